//! Server lifecycle events: a server created through the API boots (after the subscriber's
//! boot delay) with what cloud-init would apply — its private IP, its SSH keys' public keys,
//! its `user_data` — and stops and is deleted as the API is told; a server powered off
//! before its boot delay passed never boots.

use std::net::Ipv4Addr;
use std::time::Duration;

use cairn_hetzner_sim::{BootedServer, HetznerSim, ServerEvent, SimConfig, SimHandle};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

async fn call(sim: &SimHandle, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.endpoint))
        .bearer_auth(&sim.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// POSTs `body` to `path`, again while the resource is locked by a running action.
async fn post_when_unlocked(sim: &SimHandle, path: &str, body: Value) {
    loop {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", sim.endpoint))
            .bearer_auth(&sim.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            return;
        }
        assert_eq!(r.status().as_u16(), 423, "{path}: {:?}", r.text().await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn next(rx: &mut UnboundedReceiver<ServerEvent>) -> ServerEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("channel open")
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKxYH3v7mWQ6Xrz2eH1tq3kQ5s9v0b2n8c4d6f7g8h9i cairn";
const USER_DATA: &str = "#cloud-config\nruncmd:\n  - [sh, -c, 'echo hi']\n";

/// A project with a network and an SSH key; returns the network's id.
async fn project(sim: &SimHandle) -> u64 {
    let net = call(
        sim,
        reqwest::Method::POST,
        "/networks",
        json!({"name": "k3s-net", "ip_range": "10.0.0.0/16",
               "subnets": [{"type": "cloud", "network_zone": "eu-central", "ip_range": "10.0.1.0/24"}]}),
    )
    .await;
    call(
        sim,
        reqwest::Method::POST,
        "/ssh_keys",
        json!({"name": "cairn", "public_key": KEY}),
    )
    .await;
    net["network"]["id"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_boots_with_its_keys_and_user_data_then_stops_and_is_deleted() {
    let sim = HetznerSim::start(SimConfig::default()).await.unwrap();
    let net = project(&sim).await;
    let mut rx = sim.server_events(Duration::from_millis(300));
    let created = call(
        &sim,
        reqwest::Method::POST,
        "/servers",
        json!({"name": "k3s-cp2", "server_type": "cax11", "image": "ubuntu-24.04",
               "location": "nbg1", "ssh_keys": ["cairn"], "user_data": USER_DATA}),
    )
    .await;
    let id = created["server"]["id"].as_u64().unwrap();
    // Its network with a fixed IP is attached right after the create (as cairn does): the
    // boot counts from then, so the booted server has its private IP.
    post_when_unlocked(
        &sim,
        &format!("/servers/{id}/actions/attach_to_network"),
        json!({"network": net, "ip": "10.0.1.8"}),
    )
    .await;
    assert_eq!(
        next(&mut rx).await,
        ServerEvent::Booted(BootedServer {
            id,
            name: "k3s-cp2".into(),
            private_ips: vec![Ipv4Addr::new(10, 0, 1, 8)],
            public_keys: vec![KEY.into()],
            user_data: Some(USER_DATA.into()),
        })
    );
    // The API never shows what the server was created with.
    let shown = call(
        &sim,
        reqwest::Method::GET,
        &format!("/servers/{id}"),
        Value::Null,
    )
    .await;
    assert!(!shown.to_string().contains("runcmd"), "{shown}");

    call(
        &sim,
        reqwest::Method::POST,
        &format!("/servers/{id}/actions/poweroff"),
        Value::Null,
    )
    .await;
    assert_eq!(
        next(&mut rx).await,
        ServerEvent::Stopped {
            id,
            name: "k3s-cp2".into()
        }
    );
    // Deleting needs the power-off action's lock to be gone.
    let deleted = loop {
        let r = reqwest::Client::new()
            .delete(format!("{}/servers/{id}", sim.endpoint))
            .bearer_auth(&sim.token)
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            break true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(deleted);
    assert_eq!(
        next(&mut rx).await,
        ServerEvent::Deleted {
            id,
            name: "k3s-cp2".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_server_stops_and_boots_again() {
    let sim = HetznerSim::start(SimConfig::default()).await.unwrap();
    let net = project(&sim).await;
    let mut rx = sim.server_events(Duration::from_millis(50));
    let created = call(
        &sim,
        reqwest::Method::POST,
        "/servers",
        json!({"name": "k3s-w1", "server_type": "cax11", "image": "ubuntu-24.04",
               "location": "nbg1", "ssh_keys": ["cairn"], "networks": [net]}),
    )
    .await;
    let id = created["server"]["id"].as_u64().unwrap();
    assert!(matches!(next(&mut rx).await, ServerEvent::Booted(b) if b.user_data.is_none()));
    loop {
        let r = reqwest::Client::new()
            .post(format!("{}/servers/{id}/actions/rebuild", sim.endpoint))
            .bearer_auth(&sim.token)
            .json(&json!({"image": "ubuntu-24.04"}))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(next(&mut rx).await, ServerEvent::Stopped { id: i, .. } if i == id));
    match next(&mut rx).await {
        ServerEvent::Booted(b) => assert_eq!(b.public_keys, [KEY], "the keys stay"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_powered_off_before_its_boot_delay_never_boots() {
    let sim = HetznerSim::start(SimConfig {
        action_time: Duration::from_millis(1),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut rx = sim.server_events(Duration::from_secs(3600));
    let created = call(
        &sim,
        reqwest::Method::POST,
        "/servers",
        json!({"name": "short-lived", "server_type": "cax11", "image": "ubuntu-24.04",
               "location": "nbg1"}),
    )
    .await;
    let id = created["server"]["id"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sim.with_world(|w| w.coll_mut("servers").get_mut(&id).unwrap()["status"] = "off".into());
    tokio::time::sleep(Duration::from_millis(200)).await;
    sim.with_world(|w| w.coll_mut("servers").remove(&id));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err(), "nothing was announced");
}
