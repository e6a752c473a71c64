//! The client against the simulator: it waits out 429s, never leaks the token, refuses
//! non-loopback endpoints in loopback-only mode, and a create whose response is lost is
//! adopted rather than duplicated.

mod common;

use std::time::{Duration, Instant};

use cairn_hetzner::client::{Client, ClientConfig, Token};
use cairn_hetzner::*;
use cairn_hetzner_sim::{Capacities, Fault, FaultConfig, HetznerFault, HetznerSim, SimConfig};
use common::*;

#[tokio::test]
async fn client_waits_for_the_rate_limit_reset_and_then_succeeds() {
    let sim = HetznerSim::start(SimConfig {
        capacities: Capacities {
            rate_limit: 2,
            rate_refill_per_sec: 1.0,
            ..Capacities::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = Client::new(ClientConfig::new(&sim.endpoint, Token::new(&sim.token))).unwrap();
    let t = Instant::now();
    for _ in 0..4 {
        c.get("/servers", &[]).await.expect("eventually allowed");
    }
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "it waited for the refill: {:?}",
        t.elapsed()
    );
    let hits = sim.counters().total;
    assert!(
        hits <= 6,
        "it paced itself instead of hammering: {hits} requests"
    );
}

#[tokio::test]
async fn the_token_never_appears_in_errors_or_debug_output() {
    let sim = sim().await;
    let token = sim.token.clone();
    let p = provider(&sim);
    let mut texts = vec![format!("{p:?}"), format!("{:?}", p.client())];
    texts.push(
        p.client()
            .get("/servers/424242", &[])
            .await
            .unwrap_err()
            .to_string(),
    );
    let mut cfg = ClientConfig::new("http://127.0.0.1:9/v1", Token::new(&token));
    cfg.max_attempts = 2;
    let bad = Client::new(cfg).unwrap();
    let e = bad.get("/servers", &[]).await.unwrap_err();
    texts.push(e.to_string());
    texts.push(format!("{e:?}"));
    for t in &texts {
        assert!(!t.contains(&token), "token leaked in {t}");
    }
}

#[tokio::test]
async fn loopback_only_mode_refuses_a_remote_endpoint() {
    let mut remote = ClientConfig::new("https://api.hetzner.cloud/v1", Token::new("x"));
    remote.loopback_only = true;
    let e = Client::new(remote).unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
    let mut local = ClientConfig::new("http://127.0.0.1:1/v1", Token::new("x"));
    local.loopback_only = true;
    assert!(Client::new(local).is_ok());
}

#[tokio::test]
async fn lost_create_responses_are_adopted_not_duplicated() {
    let sim = sim().await;
    sim.set_faults(FaultConfig {
        seed: 11,
        rate: 0.4,
        kinds: vec![Fault::Drop],
        latency_ms: 0,
        ..FaultConfig::default()
    });
    let p = provider(&sim);
    for i in 0..6 {
        let v = create(
            &p,
            &Server::new(&format!("n{i}"), "cx22", "debian-12", "fsn1"),
        )
        .await;
        assert_eq!(v["name"], format!("n{i}"));
    }
    let dropped = sim.counters().faults.get("drop").copied().unwrap_or(0);
    assert!(dropped >= 3, "responses were dropped: {dropped}");
    let st = sim.dump_state();
    let mut names: Vec<&str> = st["objects"]["servers"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["n0", "n1", "n2", "n3", "n4", "n5"],
        "exactly one of each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_waits_share_one_batched_action_poller() {
    let sim = HetznerSim::start(SimConfig {
        action_time: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let p = provider(&sim);
    let specs: Vec<Server> = (0..8)
        .map(|i| Server::new(&format!("c{i}"), "cx22", "debian-12", "fsn1"))
        .collect();
    futures::future::join_all(specs.iter().map(|s| create(&p, s))).await;
    let c = sim.counters();
    let polls = c.matching("GET /v1/actions");
    // Each create starts two actions (create + start) and waits ~300 ms; polled one by one
    // with backoff from 10 ms that is 5+ polls per server (40+); shared, it is one poll
    // round for all of them per backoff step.
    assert!(
        polls <= 12,
        "{polls} action polls for 8 concurrent creates: {:?}",
        c.requests
    );
    assert_eq!(c.matching("POST /v1/servers"), 8);
}

#[tokio::test]
async fn an_action_ending_in_error_fails_the_resource_with_its_code_and_message() {
    use cairn_core::{Address, Change, Provider, Resource};
    let sim = sim().await;
    sim.set_faults(FaultConfig {
        seed: 1,
        rate: 1.0,
        kinds: vec![HetznerFault::ActionError.into()],
        latency_ms: 0,
        ..FaultConfig::default()
    });
    let p = provider(&sim);
    let spec = Server::new("doomed", "cx22", "debian-12", "fsn1");
    let v = serde_json::to_value(&spec).unwrap();
    let addr = Address::new(Server::KIND, "doomed");
    let m = marker("t");
    let e = p
        .create(Change {
            address: &addr,
            kind: Server::KIND,
            key: "doomed",
            desired: Some(&v),
            prior: None,
            marker: &m,
            changed: &[],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code.as_deref(), Some("action_failed"), "{e}");
    assert!(e.message.contains("failed (injected fault)"), "{e}");
    assert!(e.operation.contains("hetzner_server.doomed"), "{e}");
}

#[tokio::test]
async fn two_waiters_on_the_same_action_both_return() {
    let sim = HetznerSim::start(SimConfig {
        action_time: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = Client::new(ClientConfig::new(&sim.endpoint, Token::new(&sim.token))).unwrap();
    let body = serde_json::json!({"name": "a", "server_type": "cx22", "image": "debian-12"});
    let v = c
        .request(reqwest::Method::POST, "/servers", &[], Some(&body), false)
        .await
        .unwrap();
    let id = v["action"]["id"].as_u64().unwrap();
    let both = tokio::time::timeout(
        Duration::from_secs(5),
        futures::future::join(c.wait_actions(&[id]), c.wait_actions(&[id])),
    )
    .await;
    let (a, b) = both.expect("neither waiter hangs");
    a.unwrap();
    b.unwrap();
}
