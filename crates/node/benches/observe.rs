//! Observing simulated hosts over SSH: for 10 and 50 hosts (each a real sshd), the wall time
//! of a cold plan (connecting included) and a warm one, with the master connections opened
//! and SSH commands run. Target: one connection per host, ≤ 2 commands per host per plan
//! (one per kind: kubelet.conf, apiserver certificate).
//!
//! `cargo bench -p cairn-node --bench observe` (as root: mount namespaces).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use cairn_core::net::Dialer;
use cairn_core::{Providers, StackBuilder, plan};
use cairn_node::*;
use cairn_node_sim::NodeSim;

const KUBELET_CONF: &str = "apiVersion: v1
clusters:
- cluster:
    server: https://10.0.20.100:6443
  name: default-cluster
contexts:
- context: {cluster: default-cluster, user: default-auth}
  name: default-context
current-context: default-context
kind: Config
";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("hosts  plan   connections  commands  commands/host  wall");
    for n in [10usize, 50] {
        let dialer = Dialer::new("10.0.0.0/8=127.0.0.0/8".parse().unwrap(), true);
        let mut sim = NodeSim::new(dialer.map().clone()).expect("node simulator");
        let ca = cairn_core::tls::SelfSignedCa::generate("kubernetes");
        let started = Instant::now();
        for i in 0..n {
            let h = sim
                .start_host(&format!("node-{i}"), Ipv4Addr::new(10, 0, 30, 10 + i as u8))
                .expect("sshd");
            h.write_etc_kubernetes("kubelet.conf", KUBELET_CONF.as_bytes())
                .unwrap();
            h.write_etc_kubernetes(
                "pki/apiserver.crt",
                ca.issue(&["10.0.20.100"]).cert_pem.as_bytes(),
            )
            .unwrap();
        }
        eprintln!("started {n} sshd in {:?}", started.elapsed());
        let hosts = sim
            .hosts()
            .iter()
            .map(|h| {
                Host::new(
                    h.name(),
                    h.declared().to_string(),
                    "root",
                    HostKeyTrust::KnownHosts(sim.known_hosts()),
                )
                .port(h.port())
            })
            .collect();
        let ssh = Ssh::new(SshOptions::new(sim.client_key()), dialer, hosts).unwrap();
        let p = Arc::new(node_provider(ssh));
        let mut s = StackBuilder::new("bench");
        for h in sim.hosts() {
            s.add(
                &format!("{}-kubelet", h.name()),
                KubeconfigServer::kubelet(h.name(), "https://10.0.20.100:6443"),
            );
            s.add(
                &format!("{}-cert", h.name()),
                ApiserverCertificate::on(h.name()),
            );
        }
        let stack = s.build().unwrap();
        let providers = Providers::new().with(p.clone());
        for label in ["cold", "warm"] {
            let before = p.ctx().ssh().stats();
            let t = Instant::now();
            let planned = rt.block_on(plan(&stack, &providers)).expect("plan");
            let wall = t.elapsed();
            assert_eq!(planned.plan.resource_changes.len(), 2 * n);
            let after = p.ctx().ssh().stats();
            let (conns, cmds) = (
                after.connections - before.connections,
                after.commands - before.commands,
            );
            println!(
                "{n:>5}  {label}  {conns:>11}  {cmds:>8}  {:>13.1}  {:>6.0} ms",
                cmds as f64 / n as f64,
                wall.as_secs_f64() * 1000.0
            );
        }
        rt.block_on(p.ctx().ssh().close());
    }
}
