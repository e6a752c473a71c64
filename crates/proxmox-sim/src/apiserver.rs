//! The simulator's data plane: every running VM with an `ipconfig0` address serves a fake
//! Kubernetes apiserver `GET /readyz` over HTTPS on its loopback-mapped address (10.0.20.110
//! → 127.0.20.110, port 6443 by default). It answers 503 until the VM has been running for
//! the boot delay, then 200 `ok`; VMs listed as never ready answer 503 forever. Stopping or
//! destroying the VM closes the listener.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use cairn_core::net::AddrMap;

use super::Shared;

/// Settings of the fake apiservers.
#[derive(Debug, Clone)]
pub struct ApiserverConfig {
    /// How VM addresses map into loopback, e.g. `10.0.0.0/8=127.0.0.0/8`.
    pub addr_map: AddrMap,
    /// Port to listen on (0 = any; see [`super::ProxmoxState::apiserver_addr`]).
    pub port: u16,
    /// Time from VM start until `/readyz` answers 200.
    pub boot_delay: Duration,
    /// VMIDs whose apiserver never becomes ready.
    pub never_ready: BTreeSet<u32>,
    /// Extra subject names on every apiserver certificate, like kubeadm's `certSANs`: the
    /// VIP and DNS name clients reach the control plane by.
    pub extra_sans: Vec<String>,
}

impl Default for ApiserverConfig {
    fn default() -> Self {
        ApiserverConfig {
            addr_map: "10.0.0.0/8=127.0.0.0/8".parse().expect("valid map"),
            port: 6443,
            boot_delay: Duration::from_secs(2),
            never_ready: BTreeSet::new(),
            extra_sans: Vec::new(),
        }
    }
}

struct Running {
    ip: String,
    addr: SocketAddr,
    server: axum_server::Handle<SocketAddr>,
}

/// Live listeners by VMID.
pub(crate) struct Apiservers {
    running: Mutex<BTreeMap<u32, Running>>,
    /// Signs every fake apiserver's certificate, like a cluster CA; clients (gates) trust it.
    ca: cairn_core::tls::SelfSignedCa,
}

impl Default for Apiservers {
    fn default() -> Self {
        Apiservers {
            running: Mutex::default(),
            ca: cairn_core::tls::SelfSignedCa::generate("cairn simulator apiserver CA"),
        }
    }
}

impl Apiservers {
    /// The CA that signs every fake apiserver certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// The address VM `vmid`'s apiserver listens on, if it runs.
    pub fn addr(&self, vmid: u32) -> Option<SocketAddr> {
        self.running
            .lock()
            .expect("apiservers")
            .get(&vmid)
            .map(|r| r.addr)
    }

    /// Closes every listener.
    pub fn stop_all(&self) {
        for (_, r) in std::mem::take(&mut *self.running.lock().expect("apiservers")) {
            r.server.shutdown();
        }
    }
}

impl Drop for Apiservers {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Keeps one listener per running VM with an address, until `shared` is dropped.
pub(crate) fn spawn_reconciler(shared: std::sync::Weak<Shared>, cfg: ApiserverConfig) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let want: BTreeMap<u32, String> = {
                let w = shared.world.lock().expect("world");
                w.vms
                    .iter()
                    .filter(|(_, v)| v.running)
                    .filter_map(|(id, v)| {
                        let ip = v.config.get("ipconfig0")?;
                        let p = crate::propstr::parse(ip, None);
                        let ip = crate::propstr::get(&p, "ip")?
                            .split('/')
                            .next()?
                            .to_string();
                        Some((*id, ip))
                    })
                    .collect()
            };
            let apis = &shared.apiservers;
            let mut running = apis.running.lock().expect("apiservers");
            running.retain(|id, r| {
                let keep = want.get(id) == Some(&r.ip);
                if !keep {
                    r.server.shutdown();
                }
                keep
            });
            for (id, ip) in want {
                if running.contains_key(&id) {
                    continue;
                }
                let Ok(parsed) = ip.parse::<IpAddr>() else {
                    continue;
                };
                let mapped = cfg.addr_map.map(parsed);
                if !mapped.is_loopback() {
                    tracing::warn!(vmid = id, %ip, "not serving an apiserver on a non-loopback address");
                    continue;
                }
                match serve(id, mapped, &ip, &cfg, &apis.ca) {
                    Ok(r) => {
                        running.insert(id, r);
                    }
                    Err(e) => {
                        tracing::warn!(vmid = id, error = %e, "fake apiserver could not listen")
                    }
                }
            }
        }
    });
}

fn serve(
    vmid: u32,
    ip: IpAddr,
    vm_ip: &str,
    cfg: &ApiserverConfig,
    ca: &cairn_core::tls::SelfSignedCa,
) -> std::io::Result<Running> {
    let listener = std::net::TcpListener::bind(SocketAddr::new(ip, cfg.port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let mapped = ip.to_string();
    let mut names: Vec<&str> = vec![vm_ip, &mapped];
    names.extend(cfg.extra_sans.iter().map(String::as_str));
    let cert = ca.issue(&names);
    let started = Instant::now();
    let never = cfg.never_ready.contains(&vmid);
    let delay = cfg.boot_delay;
    let ready = Arc::new(move || !never && started.elapsed() >= delay);
    let app = Router::new().route(
        "/readyz",
        get(move || {
            let ready = ready.clone();
            async move {
                if ready() {
                    (StatusCode::OK, "ok".to_string())
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "[-]etcd failed: reason withheld\nreadyz check failed".to_string(),
                    )
                }
            }
        }),
    );
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cert.server_config()));
    let server = axum_server::Handle::new();
    let srv = axum_server::from_tcp_rustls(listener, tls)?.handle(server.clone());
    tokio::spawn(async move {
        let _ = srv.serve(app.into_make_service()).await;
    });
    tracing::info!(vmid, %addr, "fake apiserver listening");
    Ok(Running {
        ip: vm_ip.to_string(),
        addr,
        server,
    })
}
