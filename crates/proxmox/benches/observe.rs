//! Observe benchmark: requests and wall time to observe 10 / 100 / 1,000 declared VMs
//! against the simulator at 25 ms latency per request.
//!
//! Run: `cargo bench -p cairn-proxmox --bench observe`.

use std::time::{Duration, Instant};

use cairn_core::tls::TlsTrust;
use cairn_core::{ObserveRequest, Provider};
use cairn_proxmox::{Auth, ClientConfig, ProxmoxProvider, PveClient};
use cairn_proxmox_sim::{Faults, ProxmoxSim, SimConfig, World};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "observe at 25 ms latency per request; 2,000 VMs exist on the node, only the declared ones are read"
        );
        println!(
            "{:>6} {:>10} {:>20} {:>14}",
            "VMs", "requests", "cluster/resources", "wall"
        );
        for n in [10u32, 100, 1000] {
            let sim = ProxmoxSim::start(SimConfig {
                world: World::with_vms(2000, 4096 << 30),
                faults: Faults {
                    latency_ms: 25,
                    ..Faults::default()
                },
                ..SimConfig::default()
            })
            .await
            .expect("simulator");
            let cfg = ClientConfig::new(
                sim.endpoint.clone(),
                Auth::Token(sim.token.clone()),
                TlsTrust::Fingerprint(sim.fingerprint.clone().unwrap()),
            );
            let provider = ProxmoxProvider::new(PveClient::new(cfg).expect("client"));
            let keys: Vec<String> = (0..n).map(|i| (1000 + i).to_string()).collect();
            let start = Instant::now();
            let seen = provider
                .observe(ObserveRequest {
                    kind: "proxmox_vm",
                    keys: &keys,
                    stack: "bench",
                })
                .await
                .expect("observe");
            let wall = start.elapsed();
            assert_eq!(seen.len(), n as usize);
            let c = sim.counters();
            let total = c.total;
            println!(
                "{n:>6} {total:>10} {:>20} {:>11.0} ms",
                c.get("GET /cluster/resources"),
                wall.as_secs_f64() * 1000.0
            );
            drop(sim);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}
