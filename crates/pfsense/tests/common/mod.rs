//! Shared helpers for the pfSense tests: a simulator with a real HAProxy, HTTPS backends
//! on loopback that record whether traffic reached them before their `/readyz` passed, and
//! a probe loop through the frontend.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_core::tls::{SelfSigned, TlsTrust, client_config};
use cairn_core::{Address, Change, Marker, Provider};
use cairn_pfsense::{ApiKey, PfSenseClient, PfSenseProvider, ProviderOptions, Timing};
use cairn_pfsense_sim::{PfSenseSim, SimConfig, SimHandle};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Fails the test with a clear message when Debian's haproxy is not installed.
pub fn require_haproxy() {
    if let Err(e) = cairn_pfsense_sim::dataplane::find_haproxy() {
        panic!("this test drives a real HAProxy and cannot run: {e}");
    }
}

/// A simulator mapping `10.0.0.0/16` onto `127.<second>.0.0/16` (unique per test file).
pub async fn sim(second_octet: u8) -> SimHandle {
    require_haproxy();
    PfSenseSim::start(SimConfig {
        addr_map: format!("10.0.0.0/16=127.{second_octet}.0.0/16")
            .parse()
            .unwrap(),
        apply_delay: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// A client for the simulator with short test timings.
pub fn client(sim: &SimHandle, apply_timeout: Duration) -> PfSenseClient {
    PfSenseClient::new(
        &sim.endpoint,
        ApiKey::new(&sim.token),
        &sim.trust().unwrap(),
    )
    .unwrap()
    .with_timing(Timing {
        apply_timeout,
        poll: Duration::from_millis(100),
    })
}

/// A provider for the simulator.
pub fn provider(sim: &SimHandle, check_timeout: Duration) -> PfSenseProvider {
    PfSenseProvider::new(
        client(sim, Duration::from_secs(10)),
        ProviderOptions {
            server_check_timeout: check_timeout,
            drain_timeout: Duration::from_secs(10),
            interface_addresses: Vec::new(),
        },
    )
}

/// The loopback address a simulated 10.0.x.y maps to.
pub fn mapped(sim: &SimHandle, ip: &str) -> IpAddr {
    sim.addr_map().map(ip.parse().unwrap())
}

/// A free port on a loopback address.
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The marker a test stack writes.
pub fn marker(stack: &str) -> Marker {
    Marker::created(stack, Some("f00d".into()))
}

/// Creates one object through the Provider trait.
pub async fn create(
    p: &PfSenseProvider,
    kind: &str,
    key: &str,
    desired: &Value,
    stack: &str,
) -> Value {
    let address = Address::new(kind, key);
    let m = marker(stack);
    p.create(Change {
        address: &address,
        kind,
        key,
        desired: Some(desired),
        prior: None,
        marker: &m,
        changed: &[],
    })
    .await
    .unwrap_or_else(|e| panic!("create {kind} {key}: {e}"))
}

/// An HTTPS backend on loopback: `/readyz` answers 500 until `ready_after` has passed, then
/// 200; every other request is data and counts as a violation if it arrives before this
/// server ever answered a passing `/readyz`.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Data requests served.
    pub data: Arc<AtomicU64>,
    /// Data requests that arrived before its health check ever passed.
    pub before_ready: Arc<AtomicU64>,
    /// Whether `/readyz` has answered 200 at least once.
    pub check_passed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    /// Starts a backend on `ip:port` (port 0 = any) that is ready after `ready_after`.
    pub async fn start(ip: IpAddr, port: u16, ready_after: Duration, cert: &SelfSigned) -> Backend {
        let listener = TcpListener::bind((ip, port)).await.expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(cert.server_config()));
        let data = Arc::new(AtomicU64::new(0));
        let before_ready = Arc::new(AtomicU64::new(0));
        let check_passed = Arc::new(AtomicBool::new(false));
        let ready_at = Instant::now() + ready_after;
        let (d, b, c) = (data.clone(), before_ready.clone(), check_passed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, d, b, c) = (acceptor.clone(), d.clone(), b.clone(), c.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(sock).await else {
                        return;
                    };
                    let mut buf = vec![0u8; 4096];
                    let mut got = 0;
                    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") && got < buf.len() {
                        match tls.read(&mut buf[got..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got += n,
                        }
                    }
                    let req = String::from_utf8_lossy(&buf[..got]);
                    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (status, body) = if path == "/readyz" {
                        if Instant::now() >= ready_at {
                            c.store(true, Ordering::SeqCst);
                            ("200 OK", "ok")
                        } else {
                            ("500 Internal Server Error", "not ready")
                        }
                    } else {
                        d.fetch_add(1, Ordering::SeqCst);
                        if !c.load(Ordering::SeqCst) {
                            b.fetch_add(1, Ordering::SeqCst);
                        }
                        ("200 OK", "data")
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Backend {
            addr,
            data,
            before_ready,
            check_passed,
            task,
        }
    }
}

/// One HTTPS GET through the frontend; Ok(status line) or the failure.
pub async fn probe_once(target: SocketAddr, fingerprint: &str) -> Result<String, String> {
    let cfg = client_config(&TlsTrust::Fingerprint(fingerprint.into())).unwrap();
    let connector = TlsConnector::from(Arc::new(cfg));
    let work = async {
        let tcp = TcpStream::connect(target)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        tls.write_all(b"GET /data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).to_string();
        if text.starts_with("HTTP/1.1 200") {
            Ok(text.lines().next().unwrap_or("").to_string())
        } else {
            Err(format!("bad answer: {text:?}"))
        }
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .unwrap_or_else(|_| Err("timeout".into()))
}

/// A probe loop hitting the frontend continuously until stopped.
pub struct ProbeLoop {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl ProbeLoop {
    /// Starts probing `target` every few milliseconds.
    pub fn start(target: SocketAddr, fingerprint: String) -> ProbeLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let (mut ok, mut failures) = (0u64, Vec::new());
            while !s.load(Ordering::SeqCst) {
                match probe_once(target, &fingerprint).await {
                    Ok(_) => ok += 1,
                    Err(e) => failures.push(e),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failures)
        });
        ProbeLoop { stop, task }
    }

    /// Stops the loop: (successful probes, failures).
    pub async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// Waits until a probe through `target` succeeds.
pub async fn wait_serving(target: SocketAddr, fingerprint: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match probe_once(target, fingerprint).await {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => panic!("frontend {target} never served: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
