//! A host's kubelet, as a loop in the simulator: it watches the host's
//! `/etc/kubernetes/manifests` and runs the static pods found there — the kube-apiserver
//! (listening on the host's mapped address, port 6443, with the certificate on disk at the
//! moment it starts) and etcd — while the kubelet unit is active; and it reports the Node
//! Ready only while it runs (not within the restart delay) and reaches the server of the
//! `/etc/kubernetes/kubelet.conf` it read when its process started, over TLS verified
//! against the CA in that file and the server's address. Editing the file changes nothing
//! until `systemctl restart kubelet` (a kubelet started without the file, as before a join,
//! is restarted by systemd until the file appears, and so reads it once it exists).

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{NodeLive, kubeconfig_server};
use crate::probe::{Trust, get, parse_endpoint};
use crate::world_state::Shared;

/// How often the kubelet looks at its manifests (real kubelets use inotify plus a 20 s
/// resync; the simulator polls so it also sees a manifest moved out and back).
const POLL: Duration = Duration::from_millis(50);
/// How often it checks its server (node status updates).
const STATUS_EVERY: u32 = 4;

/// Identifies a manifest file version: any rename or rewrite changes it.
type Stamp = (u64, i64, i64, i64, i64);

fn stamp(p: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(p).ok()?;
    Some((
        m.ino(),
        m.ctime(),
        m.ctime_nsec(),
        m.mtime(),
        m.mtime_nsec(),
    ))
}

/// Runs the kubelet of `host` until the host is removed from the simulator.
pub(crate) async fn run(shared: Arc<Shared>, host: String) {
    let mut apiserver: Option<(tokio::task::JoinHandle<()>, Stamp)> = None;
    let mut tick: u32 = 0;
    // The kubelet.conf the running process read, and which process (start count) read it.
    let mut loaded: Option<(u64, String)> = None;
    // Whether the running process found no kubelet.conf (systemd then restarts it).
    let mut lacked = false;
    loop {
        tokio::time::sleep(POLL).await;
        tick = tick.wrapping_add(1);
        let (dir, up, active, restarting, cluster, ip, registered, starts) = {
            let w = shared.lock();
            let Some(h) = w.hosts.get(&host) else { break };
            let registered = h
                .cluster
                .and_then(|c| w.clusters.get(c))
                .is_some_and(|c| c.nodes.contains_key(&host));
            (
                h.etc_kubernetes(),
                h.up,
                h.kubelet_active(),
                h.restarting_until.is_some_and(|t| Instant::now() < t),
                h.cluster,
                h.ip,
                registered,
                h.kubelet_starts,
            )
        };
        let runs = up && active;
        if !runs || loaded.as_ref().is_some_and(|(n, _)| *n != starts) {
            loaded = None;
        }
        if runs && loaded.is_none() {
            match std::fs::read_to_string(dir.join("kubelet.conf")) {
                Ok(text) => {
                    loaded = Some((starts, text));
                    // The process that lacked the file exited; systemd started a new one.
                    if std::mem::take(&mut lacked)
                        && let Some(h) = shared.lock().hosts.get_mut(&host)
                    {
                        h.kubelet_started = std::time::SystemTime::now();
                    }
                }
                Err(_) => lacked = true,
            }
        }
        // Static pods.
        let manifest = stamp(&dir.join("manifests/kube-apiserver.yaml"));
        let want = match (runs, manifest, cluster) {
            (true, Some(s), Some(c)) => Some((s, c)),
            _ => None,
        };
        let current = apiserver.as_ref().map(|(_, s)| *s);
        if want.map(|w| w.0) != current {
            if let Some((task, _)) = apiserver.take() {
                task.abort();
                let _ = task.await;
                if let Some(h) = shared.lock().hosts.get_mut(&host) {
                    h.apiserver_running = false;
                }
            }
            if let Some((s, c)) = want {
                let cert = std::fs::read_to_string(dir.join("pki/apiserver.crt"));
                let key = std::fs::read_to_string(dir.join("pki/apiserver.key"));
                if let (Ok(cert), Ok(key)) = (cert, key) {
                    let addr = SocketAddr::new(shared.map.map(IpAddr::V4(ip)), 6443);
                    if addr.ip().is_loopback() {
                        match crate::apiserver::serve(shared.clone(), c, addr, &cert, &key).await {
                            Ok(task) => {
                                apiserver = Some((task, s));
                                if let Some(h) = shared.lock().hosts.get_mut(&host) {
                                    h.apiserver_running = true;
                                    h.apiserver_starts += 1;
                                }
                            }
                            Err(e) => {
                                tracing::debug!(host, %addr, "apiserver cannot listen yet: {e}")
                            }
                        }
                    }
                }
            }
        }
        let etcd_running = runs && cluster.is_some() && dir.join("manifests/etcd.yaml").exists();
        // Node status.
        if tick % STATUS_EVERY != 1 {
            if let Some(h) = shared.lock().hosts.get_mut(&host) {
                h.live.etcd_running = etcd_running;
            }
            continue;
        }
        let (ready, reason, message) = if !runs {
            (
                false,
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.".to_string(),
            )
        } else if restarting {
            (false, "KubeletNotReady", "kubelet is starting".to_string())
        } else if !registered {
            (false, "KubeletNotReady", "node not registered".to_string())
        } else {
            match reach(&shared, loaded.as_ref().map(|(_, t)| t.as_str())).await {
                Ok(()) => (
                    true,
                    "KubeletReady",
                    "kubelet is posting ready status".to_string(),
                ),
                Err(e) => (
                    false,
                    "NodeStatusUnknown",
                    format!("Kubelet stopped posting node status: {e}"),
                ),
            }
        };
        let mut w = shared.lock();
        let now = w.now();
        if let Some(h) = w.hosts.get_mut(&host) {
            h.status_updates += 1;
            // A restart that happened while this check ran wins.
            let (ready, reason) = if h.restarting_until.is_some_and(|t| Instant::now() < t) {
                (false, "KubeletNotReady")
            } else {
                (ready, reason)
            };
            let changed = h.live.ready != ready || h.live.reason != reason;
            h.live = NodeLive {
                ready,
                reason: reason.to_string(),
                message,
                since: if changed { now } else { h.live.since },
                etcd_running,
            };
        }
    }
    if let Some((task, _)) = apiserver.take() {
        task.abort();
    }
}

/// Whether the kubelet reaches the server of the kubelet.conf it read (`kubelet_conf`): TLS
/// verified against the CA in the file (the cluster CA) and the server's address, then
/// `/readyz` answers 200.
async fn reach(shared: &Shared, kubelet_conf: Option<&str>) -> Result<(), String> {
    let text = kubelet_conf.ok_or("open /etc/kubernetes/kubelet.conf: no such file")?;
    let (server, ca) = kubeconfig_server(text).ok_or("kubelet.conf has no server")?;
    let ca = ca.ok_or("kubelet.conf has no certificate-authority-data")?;
    let (ip, port) = parse_endpoint(&server)
        .ok_or_else(|| format!("server {server} is not an IPv4 https URL"))?;
    match get(&shared.map, ip, port, "/readyz", Trust::Ca(&ca)).await {
        Ok((200, _)) => Ok(()),
        Ok((code, _)) => Err(format!("{server}/readyz answered {code}")),
        Err(e) => Err(e.to_string()),
    }
}
