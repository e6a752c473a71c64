//! Observe benchmark: requests and wall time to observe 100 / 1,000 / 10,000 declared
//! servers against the simulator with 25 ms injected latency per request, both when the
//! servers are owned (found by label selector) and when they are hand-made (found by name
//! through a full listing). Target: at most ⌈N/50⌉ + 3 requests per kind, and wall time close
//! to the number of page rounds × latency.
//!
//! Run: `cargo bench -p cairn-hetzner --bench observe`.

use std::time::{Duration, Instant};

use cairn_core::{ObserveRequest, Provider};
use cairn_hetzner::HetznerProvider;
use cairn_hetzner::client::{ClientConfig, Token};
use cairn_hetzner_sim::{Capacities, FaultConfig, HetznerSim, SimConfig};
use serde_json::{Value, json};

fn world(n: usize, owned: bool) -> Value {
    let mut servers = serde_json::Map::new();
    for i in 0..n {
        let id = 2_000_000 + i as u64;
        let mut labels = json!({"role": "worker"});
        if owned {
            labels["cairn.dev/stack"] = "bench".into();
            labels["cairn.dev/fingerprint"] = "0123456789abcdef".into();
        }
        servers.insert(
            id.to_string(),
            json!({
                "id": id, "name": format!("node-{i:05}"), "status": "running", "labels": labels,
                "created": "2026-01-01T00:00:00+00:00",
                "server_type": {"name": "cax11"}, "image": {"name": "ubuntu-24.04"},
                "location": {"name": "fsn1", "network_zone": "eu-central"},
                "public_net": {"ipv4": {"id": id + 10_000_000, "ip": format!("203.0.113.{}", i % 250 + 2)},
                               "ipv6": {"ip": format!("2001:db8:{:x}::/64", i)}, "firewalls": []},
                "private_net": [], "placement_group": null,
            }),
        );
    }
    json!({"last_id": 20_000_000, "objects": {"servers": servers}})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let latency_ms = 25;
    let sim = HetznerSim::start(SimConfig {
        capacities: Capacities {
            rate_limit: 1_000_000,
            rate_refill_per_sec: 1_000_000.0,
            ..Capacities::default()
        },
        faults: FaultConfig {
            latency_ms,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let mut cfg = ClientConfig::new(&sim.endpoint, Token::new(&sim.token));
    cfg.timeout = Duration::from_secs(60);
    let p = HetznerProvider::new(cfg).expect("provider");
    println!(
        "observe hetzner_server at {latency_ms} ms injected latency per request (page size 50, {} concurrent pages)",
        p.client().config().page_concurrency
    );
    println!(
        "{:>7} {:>8} {:>9} {:>11} {:>10} {:>9}",
        "N", "owned", "requests", "target", "wall_ms", "rounds"
    );
    for n in [100usize, 1_000, 10_000] {
        for owned in [false, true] {
            sim.load_state(world(n, owned)).expect("load state");
            let keys: Vec<String> = (0..n).map(|i| format!("node-{i:05}")).collect();
            sim.reset_counters();
            let t = Instant::now();
            let obs = p
                .observe(ObserveRequest {
                    kind: "hetzner_server",
                    keys: &keys,
                    stack: "bench",
                })
                .await
                .expect("observe");
            let wall = t.elapsed();
            assert_eq!(obs.len(), n, "every declared server observed");
            let reqs = sim.counters().total;
            let target = n.div_ceil(50) + 3;
            let rounds = wall.as_millis() as f64 / latency_ms as f64;
            println!(
                "{n:>7} {owned:>8} {reqs:>9} {:>11} {:>10} {rounds:>9.1}",
                format!("<= {target}"),
                wall.as_millis()
            );
            assert!(
                reqs as usize <= target,
                "{reqs} requests for {n} servers (target {target})"
            );
        }
    }
}
