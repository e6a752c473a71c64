//! The cluster simulator through real hosts: real sshd processes, the simulated kubeadm
//! and systemctl reached over SSH with the `ssh` CLI, apiservers over TLS. Proves that
//! nothing becomes ready unless the step that makes it ready ran: a control-plane join
//! through the VIP, Phase 0's certificate regeneration, kubelet.conf pointing at a server
//! that answers or not, refused joins. Needs root; runs in a loopback-only namespace.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_core::net::AddrMap;
use cairn_node_sim::world::{Homelab, homelab};
use cairn_node_sim::{ClusterConfigFields, NodeSim};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 20, 99);
const MASTER2: (&str, Ipv4Addr) = ("k8s-master-2", Ipv4Addr::new(10, 0, 20, 110));

/// An address map of its own per test (`10.0.20.0/24` onto `127.<net>.20.0/24`), so tests
/// running at once, here or in other crates, never share an apiserver or VIP address.
fn map(net: u8) -> AddrMap {
    format!("10.0.20.0/24=127.{net}.20.0/24").parse().unwrap()
}

fn mapped(sim: &NodeSim, ip: Ipv4Addr) -> IpAddr {
    sim.addr_map().map(IpAddr::V4(ip))
}

/// What a command printed and its exit code.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` on `host` as root with the ssh CLI, feeding `stdin`.
fn ssh(sim: &NodeSim, host: &str, cmd: &str, stdin: &str) -> Out {
    let h = sim.host(host).expect("host");
    let mut child = Command::new("ssh")
        .arg("-i")
        .arg(sim.client_key())
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            sim.known_hosts().display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-F",
            "/dev/null",
        ])
        .arg("-o")
        .arg(format!("HostKeyAlias=[{}]:{}", h.declared(), h.port()))
        .arg("-p")
        .arg(h.port().to_string())
        .arg(format!("root@{}", h.listen().ip()))
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd` and insists it succeeds.
fn ok(sim: &NodeSim, host: &str, cmd: &str, stdin: &str) -> String {
    let o = ssh(sim, host, cmd, stdin);
    assert_eq!(o.code, 0, "{host}: {cmd}: {o:?}");
    o.stdout
}

/// `GET path` over TLS from `server`'s mapped address, verifying the cluster CA and that the
/// certificate is valid for `name`; with the admin identity when given.
fn get(
    sim: &NodeSim,
    server: Ipv4Addr,
    name: &str,
    path: &str,
    ca_pem: &str,
    client: Option<&(String, String)>,
) -> Result<(u16, String), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        Some((cert, key)) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let sn = ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), sn).unwrap();
    let tcp = TcpStream::connect_timeout(
        &SocketAddr::new(mapped(sim, server), 6443),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {server}:6443\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("tls: {e}"))?;
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    if buf.is_empty() {
        return Err("tls: no response".into());
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Ok((code, body.to_string()))
}

/// Polls `f` until it holds or `timeout` passes.
fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// The VIP as HAProxy in TCP mode would be: 127.0.20.99:6443 forwarding to the master.
struct Vip {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Vip {
    fn to(sim: &NodeSim, backend: Ipv4Addr) -> Vip {
        let addr = SocketAddr::new(mapped(sim, VIP), 6443);
        let l = TcpListener::bind(addr).expect("VIP listener");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let be = SocketAddr::new(mapped(sim, backend), 6443);
        std::thread::spawn(move || {
            for c in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(front) = c else { continue };
                let Ok(back) = TcpStream::connect(be) else {
                    continue;
                };
                let (mut f2, mut b2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
                let (mut f, mut b) = (front, back);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut f, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut b2, &mut f2);
                    let _ = f2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Vip { stop, addr }
    }
}

impl Drop for Vip {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

const PHASE0_CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.1
controlPlaneEndpoint: 10.0.20.99:6443
apiServer:
  certSANs:
  - 10.0.20.99
  - k8s-apiserver.lab
";

/// A homelab whose nodes are all Ready.
fn ready_homelab(net: u8) -> Homelab {
    let lab = homelab(map(net)).expect("homelab");
    assert!(
        lab.wait_ready(Duration::from_secs(20)),
        "{:?}",
        lab.sim.nodes(lab.cluster)
    );
    lab
}

/// Phase 0 on the master, as the cutover does it over SSH.
fn phase0(sim: &NodeSim) {
    let m = "k8s-master";
    ok(sim, m, "cat > /root/kubeadm.yaml", PHASE0_CONFIG);
    let up = ok(
        sim,
        m,
        "kubeadm init phase upload-config kubeadm --config /root/kubeadm.yaml",
        "",
    );
    assert!(up.contains("kubeadm-config"), "{up}");
    ok(
        sim,
        m,
        "mkdir -p /root/old && mv /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/pki/apiserver.key /root/old/",
        "",
    );
    let certs = ok(
        sim,
        m,
        "kubeadm init phase certs apiserver --config /root/kubeadm.yaml",
        "",
    );
    assert!(certs.contains("Generating \"apiserver\""), "{certs}");
    assert!(certs.contains("10.0.20.99"), "{certs}");
    let starts = sim.apiserver_starts(m);
    ok(
        sim,
        m,
        "mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/ && sleep 0.3 && mv /root/kube-apiserver.yaml /etc/kubernetes/manifests/",
        "",
    );
    assert!(
        wait(Duration::from_secs(10), || sim.apiserver_starts(m) > starts
            && sim.apiserver_running(m)),
        "the apiserver static pod did not restart"
    );
}

#[test]
fn the_homelab_master_lacks_the_vip_san_until_phase_0_restarts_its_apiserver() {
    let lab = ready_homelab(202);
    let (sim, ca) = (&lab.sim, lab.sim.cluster_ca_pem(lab.cluster));
    let master = Ipv4Addr::new(10, 0, 20, 100);
    assert_eq!(
        get(sim, master, "10.0.20.100", "/readyz", &ca, None)
            .unwrap()
            .0,
        200
    );
    let e = get(sim, master, "10.0.20.99", "/readyz", &ca, None).unwrap_err();
    assert!(e.contains("tls"), "{e}");
    assert_eq!(sim.etcd_members(lab.cluster), ["k8s-master"]);
    // A regenerated certificate alone changes nothing: the running apiserver keeps the old one.
    let m = "k8s-master";
    ok(sim, m, "cat > /root/kubeadm.yaml", PHASE0_CONFIG);
    ok(
        sim,
        m,
        "kubeadm init phase upload-config kubeadm --config /root/kubeadm.yaml",
        "",
    );
    let kept = ok(
        sim,
        m,
        "kubeadm init phase certs apiserver --config /root/kubeadm.yaml",
        "",
    );
    assert!(
        kept.contains("Using existing apiserver certificate and key on disk"),
        "{kept}"
    );
    assert!(get(sim, master, "10.0.20.99", "/readyz", &ca, None).is_err());
    phase0(sim);
    assert_eq!(
        get(sim, master, "10.0.20.99", "/readyz", &ca, None).unwrap(),
        (200, "ok".into())
    );
    assert_eq!(
        get(sim, master, "k8s-apiserver.lab", "/livez", &ca, None)
            .unwrap()
            .0,
        200
    );
    let cc = sim.cluster_configuration(lab.cluster).unwrap();
    assert!(cc.contains("controlPlaneEndpoint: 10.0.20.99:6443"), "{cc}");
    assert!(cc.contains("apiVersion: kubeadm.k8s.io/v1beta4"), "{cc}");
}

#[test]
fn a_control_plane_join_through_the_vip_reaches_ready_with_an_etcd_member() {
    let mut lab = ready_homelab(203);
    let cluster = lab.cluster;
    phase0(&lab.sim);
    let _vip = Vip::to(&lab.sim, Ipv4Addr::new(10, 0, 20, 100));
    lab.sim.start_host(MASTER2.0, MASTER2.1).unwrap();
    let sim = &lab.sim;
    assert!(!sim.apiserver_running(MASTER2.0));
    let up = ok(
        sim,
        "k8s-master",
        "kubeadm init phase upload-certs --upload-certs",
        "",
    );
    let key = up.lines().last().unwrap().trim().to_string();
    assert_eq!(key.len(), 64, "{up}");
    let join = ok(
        sim,
        "k8s-master",
        "kubeadm token create --print-join-command",
        "",
    );
    let words: Vec<&str> = join.split_whitespace().collect();
    assert_eq!(words[..2], ["kubeadm", "join"], "{join}");
    let token = words[words.iter().position(|w| *w == "--token").unwrap() + 1];
    let hash = words[words
        .iter()
        .position(|w| *w == "--discovery-token-ca-cert-hash")
        .unwrap()
        + 1];
    assert_eq!(hash, sim.discovery_hash(cluster));
    let out = ok(
        sim,
        MASTER2.0,
        &format!(
            "kubeadm join 10.0.20.99:6443 --token {token} --discovery-token-ca-cert-hash {hash} --control-plane --certificate-key {key}"
        ),
        "",
    );
    assert!(
        out.contains(
            "This node has joined the cluster and a new control plane instance was created"
        ),
        "{out}"
    );
    assert!(
        wait(Duration::from_secs(20), || sim
            .node(cluster, MASTER2.0)
            .is_some_and(|n| n.ready)),
        "{:?}",
        sim.nodes(cluster)
    );
    assert!(wait(Duration::from_secs(10), || sim
        .etcd_members(cluster)
        .len()
        == 2));
    let ca = sim.cluster_ca_pem(cluster);
    for name in [
        "10.0.20.110",
        "10.0.20.99",
        "k8s-apiserver.lab",
        "k8s-master-2",
        "kubernetes.default.svc",
    ] {
        assert_eq!(
            get(sim, MASTER2.1, name, "/readyz", &ca, None).unwrap(),
            (200, "ok".into()),
            "{name}"
        );
    }
    // Its kubelet talks to its own apiserver, as recent kubeadm sets it up.
    let conf = ok(sim, MASTER2.0, "cat /etc/kubernetes/kubelet.conf", "");
    assert!(conf.contains("server: https://10.0.20.110:6443"), "{conf}");
    // The Kubernetes API: anonymous is refused, the admin sees the Node and etcd pods.
    let (code, body) = get(sim, MASTER2.1, "10.0.20.110", "/api/v1/nodes", &ca, None).unwrap();
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
    let admin = sim.admin_identity(cluster);
    let (code, body) = get(
        sim,
        MASTER2.1,
        "10.0.20.110",
        "/api/v1/nodes/k8s-master-2",
        &ca,
        Some(&admin),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let node: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    let (code, body) = get(
        sim,
        MASTER2.1,
        "10.0.20.110",
        "/api/v1/namespaces/kube-system/pods?labelSelector=component%3Detcd",
        &ca,
        Some(&admin),
    )
    .unwrap();
    assert_eq!(code, 200);
    let pods: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["etcd-k8s-master", "etcd-k8s-master-2"]);
    let (code, body) = get(
        sim,
        MASTER2.1,
        "10.0.20.110",
        "/api/v1/nodes/nope",
        &ca,
        Some(&admin),
    )
    .unwrap();
    assert_eq!(code, 404);
    assert!(body.contains("\"reason\":\"NotFound\""), "{body}");
    // No token or certificate key in any file the simulator keeps.
    let logs = ok(sim, MASTER2.0, "cat /etc/kubernetes/*.conf", "");
    assert!(!logs.contains(token) && !logs.contains(&key));
    for h in sim.hosts() {
        for log in ["sshd.log", "state/systemctl.log"] {
            let dir = h.etc_kubernetes().parent().unwrap().join(log);
            let text = std::fs::read_to_string(dir).unwrap_or_default();
            assert!(!text.contains(token) && !text.contains(&key), "{log}");
        }
    }
}

/// A join's parts from the master: certificate key, token, hash.
fn join_material(sim: &NodeSim) -> (String, String, String) {
    let up = ok(
        sim,
        "k8s-master",
        "kubeadm init phase upload-certs --upload-certs",
        "",
    );
    let key = up.lines().last().unwrap().trim().to_string();
    let join = ok(
        sim,
        "k8s-master",
        "kubeadm token create --print-join-command",
        "",
    );
    let w: Vec<&str> = join.split_whitespace().collect();
    let token = w[w.iter().position(|x| *x == "--token").unwrap() + 1].to_string();
    let hash = w[w
        .iter()
        .position(|x| *x == "--discovery-token-ca-cert-hash")
        .unwrap()
        + 1]
    .to_string();
    (key, token, hash)
}

fn cp_join(sim: &NodeSim, host: &str, endpoint: &str, m: &(String, String, String)) -> Out {
    ssh(
        sim,
        host,
        &format!(
            "kubeadm join {endpoint} --token {} --discovery-token-ca-cert-hash {} --control-plane --certificate-key {}",
            m.1, m.2, m.0
        ),
        "",
    )
}

#[test]
fn a_control_plane_join_is_refused_without_a_control_plane_endpoint() {
    let mut lab = ready_homelab(204);
    lab.sim.start_host(MASTER2.0, MASTER2.1).unwrap();
    let sim = &lab.sim;
    let m = join_material(sim);
    let o = cp_join(sim, MASTER2.0, "10.0.20.100:6443", &m);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address"), "{o:?}");
    assert_eq!(sim.joins(MASTER2.0), 0);
    assert!(
        !sim.host(MASTER2.0)
            .unwrap()
            .etc_kubernetes()
            .join("kubelet.conf")
            .exists()
    );
    assert!(sim.node(lab.cluster, MASTER2.0).is_none());
    assert!(!o.stderr.contains(&m.0) && !o.stderr.contains(&m.1));
}

#[test]
fn a_join_through_an_address_not_in_the_certificate_sans_is_refused() {
    let mut lab = ready_homelab(205);
    let _vip = Vip::to(&lab.sim, Ipv4Addr::new(10, 0, 20, 100));
    lab.sim.start_host(MASTER2.0, MASTER2.1).unwrap();
    let sim = &lab.sim;
    let m = join_material(sim);
    let o = cp_join(sim, MASTER2.0, "10.0.20.99:6443", &m);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("couldn't validate the identity of the API Server"),
        "{o:?}"
    );
    assert!(o.stderr.contains("x509"), "{o:?}");
    assert!(sim.node(lab.cluster, MASTER2.0).is_none());
    // Nothing listens where nobody serves.
    let o = cp_join(sim, MASTER2.0, "10.0.20.98:6443", &m);
    assert!(o.stderr.contains("connection refused"), "{o:?}");
    // An unknown token is refused (and not echoed).
    let unknown = (
        m.0.clone(),
        "abcdef.0123456789abcdef".to_string(),
        m.2.clone(),
    );
    let o = cp_join(sim, MASTER2.0, "10.0.20.100:6443", &unknown);
    assert!(
        o.stderr.contains(
            "could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\""
        ),
        "{o:?}"
    );
    assert!(!o.stderr.contains("0123456789abcdef"), "{o:?}");
    // A wrong CA pin is refused too.
    let bad = (
        m.0.clone(),
        m.1.clone(),
        format!("sha256:{}", "0".repeat(64)),
    );
    let o = cp_join(sim, MASTER2.0, "10.0.20.100:6443", &bad);
    assert!(o.stderr.contains("none of the public keys"), "{o:?}");
}

#[test]
fn a_certificate_key_older_than_two_hours_is_refused_and_a_fresh_upload_works() {
    let mut lab = ready_homelab(206);
    let cluster = lab.cluster;
    phase0(&lab.sim);
    let _vip = Vip::to(&lab.sim, Ipv4Addr::new(10, 0, 20, 100));
    lab.sim.start_host(MASTER2.0, MASTER2.1).unwrap();
    let sim = &lab.sim;
    let old = join_material(sim);
    sim.advance_clock(Duration::from_secs(2 * 3600 + 1));
    let o = cp_join(sim, MASTER2.0, "10.0.20.99:6443", &old);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("\"kubeadm-certs\" was not found"),
        "{o:?}"
    );
    assert!(sim.node(cluster, MASTER2.0).is_none());
    let fresh = join_material(sim);
    let o = cp_join(sim, MASTER2.0, "10.0.20.99:6443", &fresh);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(wait(Duration::from_secs(20), || sim
        .node(cluster, MASTER2.0)
        .is_some_and(|n| n.ready)));
}

#[test]
fn a_failed_join_changes_nothing_and_the_next_one_succeeds() {
    let mut lab = ready_homelab(207);
    let cluster = lab.cluster;
    phase0(&lab.sim);
    let _vip = Vip::to(&lab.sim, Ipv4Addr::new(10, 0, 20, 100));
    lab.sim.start_host(MASTER2.0, MASTER2.1).unwrap();
    let sim = &lab.sim;
    let m = join_material(sim);
    // The test hook, through the control socket as any tool would use it.
    let hook = Command::new("curl")
        .args(["-sS", "--fail", "-X", "POST", "--unix-socket"])
        .arg(sim.control_socket())
        .arg(format!("http://sim/_sim/fail-next-join/{}", MASTER2.0))
        .output()
        .unwrap();
    assert!(hook.status.success(), "{hook:?}");
    let o = cp_join(sim, MASTER2.0, "10.0.20.99:6443", &m);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(sim.node(cluster, MASTER2.0).is_none());
    assert!(
        !sim.host(MASTER2.0)
            .unwrap()
            .etc_kubernetes()
            .join("manifests")
            .exists()
    );
    let o = cp_join(sim, MASTER2.0, "10.0.20.99:6443", &m);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(sim.joins(MASTER2.0), 1);
}

#[test]
fn a_kubelet_pointed_at_an_unreachable_server_stays_not_ready_until_pointed_back() {
    let lab = ready_homelab(208);
    let (sim, cluster) = (&lab.sim, lab.cluster);
    sim.set_kubelet_restart_delay(Duration::from_millis(100));
    let w = "k8s-worker-1";
    ok(
        sim,
        w,
        "sed -i 's#https://10.0.20.100:6443#https://10.0.20.99:6443#' /etc/kubernetes/kubelet.conf && systemctl restart kubelet",
        "",
    );
    assert_eq!(sim.host(w).unwrap().restarts("kubelet"), 1);
    assert!(
        !sim.node(cluster, w).unwrap().ready,
        "a restarted kubelet is not Ready at once"
    );
    let seen = sim.kubelet_status_updates(w);
    assert!(wait(Duration::from_secs(10), || sim
        .kubelet_status_updates(w)
        >= seen + 5));
    let n = sim.node(cluster, w).unwrap();
    assert!(!n.ready && n.reason == "NodeStatusUnknown", "{n:?}");
    assert!(
        sim.node(cluster, "k8s-worker-2").unwrap().ready,
        "other nodes are not affected"
    );
    ok(
        sim,
        w,
        "sed -i 's#https://10.0.20.99:6443#https://10.0.20.100:6443#' /etc/kubernetes/kubelet.conf && systemctl restart kubelet",
        "",
    );
    assert!(wait(Duration::from_secs(10), || sim
        .node(cluster, w)
        .unwrap()
        .ready));
    assert_eq!(ok(sim, w, "systemctl is-active kubelet", ""), "active\n");
}

#[test]
fn a_kubelet_conf_edited_without_a_restart_leaves_the_kubelet_on_its_old_server() {
    let lab = ready_homelab(214);
    let (sim, cluster) = (&lab.sim, lab.cluster);
    sim.set_kubelet_restart_delay(Duration::from_millis(100));
    let w = "k8s-worker-1";
    let started = |sim: &NodeSim| -> i64 {
        let t = ok(
            sim,
            w,
            "date -d \"$(systemctl show kubelet -p ActiveEnterTimestamp --value)\" +%s",
            "",
        );
        t.trim().parse().expect("a systemd timestamp date parses")
    };
    let before = started(sim);
    // The server moves to an address nothing answers on, without a restart.
    ok(
        sim,
        w,
        "sed -i 's#https://10.0.20.100:6443#https://10.0.20.99:6443#' /etc/kubernetes/kubelet.conf",
        "",
    );
    let seen = sim.kubelet_status_updates(w);
    assert!(wait(Duration::from_secs(10), || sim
        .kubelet_status_updates(w)
        >= seen + 5));
    let n = sim.node(cluster, w).unwrap();
    assert!(
        n.ready,
        "the running kubelet still uses its old server: {n:?}"
    );
    assert_eq!(started(sim), before, "no restart happened");
    ok(sim, w, "systemctl restart kubelet", "");
    let mtime: i64 = ok(sim, w, "stat -c %Y /etc/kubernetes/kubelet.conf", "")
        .trim()
        .parse()
        .unwrap();
    assert!(
        started(sim) >= mtime,
        "the restarted kubelet started after the edit"
    );
    let seen = sim.kubelet_status_updates(w);
    assert!(wait(Duration::from_secs(10), || sim
        .kubelet_status_updates(w)
        >= seen + 5));
    let n = sim.node(cluster, w).unwrap();
    assert!(
        !n.ready && n.reason == "NodeStatusUnknown",
        "the restarted kubelet reads the edited file: {n:?}"
    );
    assert_eq!(
        ok(sim, w, "systemctl show kubelet -p ActiveState", ""),
        "ActiveState=active\n"
    );
}

#[test]
fn stopping_the_kubelet_or_removing_the_manifest_stops_the_apiserver() {
    let lab = ready_homelab(209);
    let sim = &lab.sim;
    let ca = sim.cluster_ca_pem(lab.cluster);
    let master = Ipv4Addr::new(10, 0, 20, 100);
    ok(
        sim,
        "k8s-master",
        "mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/",
        "",
    );
    assert!(wait(Duration::from_secs(10), || get(
        sim,
        master,
        "10.0.20.100",
        "/readyz",
        &ca,
        None
    )
    .is_err()));
    // Workers lose their server.
    assert!(wait(Duration::from_secs(10), || !sim
        .node(lab.cluster, "k8s-worker-1")
        .unwrap()
        .ready));
    ok(
        sim,
        "k8s-master",
        "mv /root/kube-apiserver.yaml /etc/kubernetes/manifests/",
        "",
    );
    assert!(lab.wait_ready(Duration::from_secs(20)));
    ok(sim, "k8s-master", "systemctl stop kubelet", "");
    assert!(wait(Duration::from_secs(10), || !sim
        .apiserver_running("k8s-master")));
    assert_eq!(
        ssh(sim, "k8s-master", "systemctl is-active kubelet", "").code,
        3
    );
}

#[test]
fn kubeadm_and_systemctl_fail_like_real_ones_on_what_is_not_modelled() {
    let mut sim = NodeSim::new(map(200)).unwrap();
    let c = sim.add_cluster("x");
    sim.start_host("h", Ipv4Addr::new(10, 0, 20, 120)).unwrap();
    assert_eq!(ok(&sim, "h", "kubeadm version -o short", ""), "v1.34.1\n");
    assert_eq!(
        ok(&sim, "h", "kubectl version --client", ""),
        "Client Version: v1.34.1\n"
    );
    let o = ssh(&sim, "h", "kubeadm reset -f", "");
    assert!(
        o.code != 0 && o.stderr.contains("unknown command \"reset\""),
        "{o:?}"
    );
    let o = ssh(&sim, "h", "systemctl restart nginx", "");
    assert_eq!(o.code, 5, "{o:?}");
    // Without admin.conf there is no cluster to upload to.
    let o = ssh(
        &sim,
        "h",
        "kubeadm init phase upload-certs --upload-certs",
        "",
    );
    assert_eq!(o.code, 1, "{o:?}");
    let o = ssh(&sim, "h", "kubeadm token create --print-join-command", "");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(sim.nodes(c).is_empty());
    let _ = ClusterConfigFields::default();
}

#[test]
fn a_booted_vm_becomes_a_host_that_accepts_exactly_its_cloud_init_keys() {
    let mut sim = NodeSim::new(map(210)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("vm_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let machine = cairn_node_sim::Machine {
        name: "k8s-master-2".into(),
        ip: MASTER2.1,
        user: Some("debian".into()),
        authorized_keys: std::fs::read_to_string(key.with_extension("pub")).unwrap(),
    };
    sim.boot_machine(&machine).unwrap();
    let h = sim.host("k8s-master-2").unwrap();
    let login = |user: &str, key: &std::path::Path| {
        Command::new("ssh")
            .arg("-i")
            .arg(key)
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                sim.known_hosts().display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-F",
                "/dev/null",
            ])
            .arg("-o")
            .arg(format!("HostKeyAlias=[{}]:{}", h.declared(), h.port()))
            .arg("-p")
            .arg(h.port().to_string())
            .arg(format!("{user}@{}", h.listen().ip()))
            .arg("sudo -n kubeadm version -o short")
            .output()
            .unwrap()
    };
    let o = login("debian", &key);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "v1.34.1\n");
    assert!(login("root", &key).status.success());
    // The simulator's own client key is not among the VM's keys.
    let o = login("root", &sim.client_key());
    assert_eq!(o.status.code(), Some(255), "{o:?}");
    // Stopped with its VM, back with its files.
    sim.host("k8s-master-2")
        .unwrap()
        .write_etc_kubernetes("marker", b"x")
        .unwrap();
    sim.stop_host("k8s-master-2");
    sim.boot_machine(&machine).unwrap();
    let h = sim.host("k8s-master-2").unwrap();
    assert!(h.etc_kubernetes().join("marker").exists());
    sim.remove_host("k8s-master-2");
    assert!(sim.host("k8s-master-2").is_none());
}

#[test]
fn a_worker_join_keeps_its_kubelet_at_the_endpoint_and_runs_no_control_plane() {
    let mut lab = ready_homelab(213);
    let cluster = lab.cluster;
    lab.sim
        .start_host("k8s-worker-5", Ipv4Addr::new(10, 0, 20, 105))
        .unwrap();
    let sim = &lab.sim;
    let join = ok(
        sim,
        "k8s-master",
        "kubeadm token create --print-join-command",
        "",
    );
    assert!(
        join.starts_with("kubeadm join 10.0.20.100:6443 --token "),
        "{join}"
    );
    let out = ok(sim, "k8s-worker-5", join.trim(), "");
    assert!(out.contains("This node has joined the cluster:"), "{out}");
    assert!(wait(Duration::from_secs(20), || sim
        .node(cluster, "k8s-worker-5")
        .is_some_and(|n| n.ready && !n.control_plane)));
    let conf = ok(sim, "k8s-worker-5", "cat /etc/kubernetes/kubelet.conf", "");
    assert!(conf.contains("server: https://10.0.20.100:6443"), "{conf}");
    assert_eq!(sim.etcd_members(cluster), ["k8s-master"]);
    assert!(!sim.apiserver_running("k8s-worker-5"));
    // Joining twice is refused by kubeadm's preflight checks.
    let again = ssh(sim, "k8s-worker-5", join.trim(), "");
    assert!(
        again
            .stderr
            .contains("/etc/kubernetes/kubelet.conf already exists"),
        "{again:?}"
    );
}
