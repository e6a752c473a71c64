//! Capacities and budgets set through `/_sim/capacities`: the public IPv4 pool lasts for
//! worlds far larger than the documentation ranges, and both it and the rate-limit budget
//! can be changed at run time.

use cairn_hetzner_sim::{HetznerSim, SimConfig, SimHandle};
use serde_json::{Value, json};

async fn put_capacities(sim: &SimHandle, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/_sim/capacities", sim.root_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn create_server(sim: &SimHandle, name: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/servers", sim.endpoint))
        .bearer_auth(&sim.token)
        .json(&json!({"name": name, "server_type": "cx22", "image": "debian-12"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_servers_get_distinct_public_ipv4s_past_the_documentation_ranges() {
    let sim = HetznerSim::start(SimConfig::default()).await.unwrap();
    assert!(
        sim.capacities()["public_ipv4_capacity"].as_u64().unwrap() > 100_000,
        "{}",
        sim.capacities()
    );
    let mut ips = std::collections::BTreeSet::new();
    for i in 0..1000 {
        let (s, v) = create_server(&sim, &format!("n{i:04}")).await;
        assert_eq!(s, 201, "server {i}: {v}");
        let ip = v["server"]["public_net"]["ipv4"]["ip"].as_str().unwrap();
        assert!(ips.insert(ip.to_string()), "{ip} handed out twice");
    }
    // The first 759 come from the documentation ranges, the rest from 198.18.0.0/15.
    assert!(ips.contains("203.0.113.2") && ips.iter().any(|ip| ip.starts_with("198.18.")));
}

#[tokio::test]
async fn a_small_pool_set_at_run_time_runs_out_with_resource_unavailable() {
    let sim = HetznerSim::start(SimConfig::default()).await.unwrap();
    let (s, caps) = put_capacities(&sim, json!({"public_ipv4_pools": ["203.0.113.0/29"]})).await;
    assert_eq!(s, 200, "{caps}");
    assert_eq!(
        caps["public_ipv4_capacity"], 5,
        "a /29 less the first two and the last"
    );
    for i in 0..5 {
        assert_eq!(create_server(&sim, &format!("s{i}")).await.0, 201);
    }
    let (s, v) = create_server(&sim, "one-too-many").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (412, Some("resource_unavailable"))
    );
    let (s, v) = put_capacities(&sim, json!({"public_ipv4_pools": ["203.0.113.1/24"]})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_capacities"))
    );
    let (s, _) = put_capacities(&sim, json!({"servers": 3})).await;
    assert_eq!(s, 400, "unknown capacities are refused");
}

#[tokio::test]
async fn the_rate_limit_budget_is_settable_and_reset_restores_the_real_one() {
    let sim = HetznerSim::start(SimConfig::default()).await.unwrap();
    let get = || async {
        let r = reqwest::Client::new()
            .get(format!("{}/servers", sim.endpoint))
            .bearer_auth(&sim.token)
            .send()
            .await
            .unwrap();
        let limit = r.headers()["RateLimit-Limit"].to_str().unwrap().to_string();
        (r.status().as_u16(), limit)
    };
    assert_eq!(get().await, (200, "3600".to_string()));
    let (s, caps) =
        put_capacities(&sim, json!({"rate_limit": 2, "rate_refill_per_sec": 0.0})).await;
    assert_eq!((s, &caps["rate_limit"]), (200, &json!(2)));
    assert_eq!(get().await, (200, "2".to_string()));
    assert_eq!(get().await, (200, "2".to_string()));
    assert_eq!(get().await.0, 429, "the budget of 2 is spent");
    sim.reset();
    assert_eq!(sim.capacities()["rate_limit"], 3600);
    assert_eq!(get().await, (200, "3600".to_string()));
}
