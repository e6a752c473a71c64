//! What rotating and upgrading the Hetzner k3s cluster relies on, through the simulated
//! apiservers over TLS with the admin's client certificate and k3s installs on real sshd
//! hosts: eviction honours the PodDisruptionBudget and the controller's replacement lands
//! on the other worker; a SQLite server migrates to etcd with `--cluster-init` and joining
//! servers make three healthy members; deleting a server's Node removes its member and
//! quorum follows; a rebuilt host is refused by its node password until its Node is
//! deleted; a rebuilt `--cluster-init` server joins instead of forming a new cluster.
//! Needs root; runs in a loopback-only namespace.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::net::AddrMap;
use cairn_node_sim::world::{
    DOCFAST, DOCFAST_NAMESPACE, HetznerK3s, K3S_FLANNEL_IFACE, K3S_SERVER_TAINT, K3S_VERSION,
    hetzner_k3s,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};

const MGR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
const CP2: (&str, Ipv4Addr) = ("k3s-cp2", Ipv4Addr::new(10, 0, 1, 8));
const CP3: (&str, Ipv4Addr) = ("k3s-cp3", Ipv4Addr::new(10, 0, 1, 9));

fn map(net: u8) -> AddrMap {
    format!("10.0.1.0/24=127.{net}.1.0/24").parse().unwrap()
}

/// A request to the apiserver at `server:6443` as the cluster admin (TLS verified against
/// the cluster CA): `(status, body)`.
fn api(
    w: &HetznerK3s,
    server: Ipv4Addr,
    method: &str,
    path: &str,
    body: Option<(&str, &Value)>,
) -> Result<(u16, String), String> {
    let ca = w.sim.cluster_ca_pem(w.cluster);
    let (cert, key) = w.sim.admin_identity(w.cluster);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(Result::unwrap)
                .collect(),
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    let sn = ServerName::try_from(server.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), sn).unwrap();
    let addr = SocketAddr::new(w.sim.addr_map().map(IpAddr::V4(server)), 6443);
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let (ct, payload) = match body {
        Some((ct, v)) => (ct, v.to_string()),
        None => ("application/json", String::new()),
    };
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: {server}:6443\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .map_err(|e| format!("tls: {e}"))?;
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no response")?;
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Ok((code, body.to_string()))
}

/// Like [`api`], insisting on `want`; returns the body as JSON (or a string).
fn expect(
    w: &HetznerK3s,
    want: u16,
    method: &str,
    path: &str,
    body: Option<(&str, &Value)>,
) -> Value {
    let (code, text) = api(w, MGR, method, path, body).expect("apiserver answers");
    assert_eq!(code, want, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
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

fn ready_world(net: u8) -> HetznerK3s {
    let w = hetzner_k3s(map(net)).expect("world");
    assert!(
        w.wait_ready(Duration::from_secs(30)),
        "{:?} {:?}",
        w.sim.nodes(w.cluster),
        w.sim.pods(w.cluster, DOCFAST_NAMESPACE)
    );
    w
}

fn server_exec(ip: Ipv4Addr, extra: &str) -> String {
    format!(
        "server {extra} --node-taint {K3S_SERVER_TAINT} --flannel-iface {K3S_FLANNEL_IFACE} --node-ip {ip}"
    )
}

/// Installs k3s as a server on `host` with `exec` and the cluster's token.
fn install_server(w: &HetznerK3s, host: &str, exec: &str) -> std::io::Result<String> {
    w.sim.k3s_install(
        host,
        &[
            ("INSTALL_K3S_VERSION", K3S_VERSION),
            ("INSTALL_K3S_EXEC", exec),
            ("K3S_TOKEN", &w.token),
        ],
    )
}

/// The world converted to three etcd servers as the stack does it: k3s-mgr restarted with
/// `--cluster-init`, k3s-cp2 and k3s-cp3 joining it.
fn ha_world(net: u8) -> HetznerK3s {
    let mut w = ready_world(net);
    install_server(&w, "k3s-mgr", &server_exec(MGR, "--cluster-init")).expect("migration");
    for (name, ip) in [CP2, CP3] {
        w.sim.start_k3s_host(name, ip).unwrap();
        install_server(
            &w,
            name,
            &server_exec(ip, &format!("--server https://{MGR}:6443")),
        )
        .expect("join");
    }
    assert!(
        wait(Duration::from_secs(30), || {
            w.sim.etcd_health(w.cluster) == (3, 3)
                && w.sim.nodes(w.cluster).iter().filter(|n| n.ready).count() == 5
        }),
        "{:?} {:?}",
        w.sim.etcd_health(w.cluster),
        w.sim.nodes(w.cluster)
    );
    w
}

/// The docfast pods on `node`.
fn pods_on(w: &HetznerK3s, node: &str) -> Vec<Pod> {
    let v = expect(
        w,
        200,
        "GET",
        &format!(
            "/api/v1/namespaces/{DOCFAST_NAMESPACE}/pods?fieldSelector=spec.nodeName%3D{node}"
        ),
        None,
    );
    serde_json::from_value::<k8s_openapi::List<Pod>>(v)
        .unwrap()
        .items
}

#[test]
fn eviction_respects_the_pdb_and_the_replacement_lands_on_the_other_worker() {
    let w = ready_world(231);
    let on_w1 = pods_on(&w, "k3s-w1");
    let on_w2 = pods_on(&w, "k3s-w2");
    assert_eq!((on_w1.len(), on_w2.len()), (1, 1));
    assert!(pods_on(&w, "k3s-mgr").is_empty(), "the server is tainted");
    // k3s's svclb DaemonSet has a pod on every node, the tainted server too.
    assert!(wait(Duration::from_secs(10), || {
        let v = expect(
            &w,
            200,
            "GET",
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dk3s-mgr",
            None,
        );
        let pods = serde_json::from_value::<k8s_openapi::List<Pod>>(v)
            .unwrap()
            .items;
        pods.len() == 1
            && pods[0].metadata.owner_references.as_ref().unwrap()[0].kind == "DaemonSet"
    }));
    let victim = on_w1[0].metadata.name.clone().unwrap();
    let owner = &on_w1[0].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "ReplicaSet");

    // Cordon k3s-w1 as kubectl does (strategic merge patch).
    let node: Node = serde_json::from_value(expect(
        &w,
        200,
        "PATCH",
        "/api/v1/nodes/k3s-w1",
        Some((
            "application/strategic-merge-patch+json",
            &json!({"spec": {"unschedulable": true}}),
        )),
    ))
    .unwrap();
    assert_eq!(node.spec.unwrap().unschedulable, Some(true));
    assert_eq!(w.sim.cordoned(w.cluster), ["k3s-w1"]);

    // A budget that needs both pods refuses the eviction, as the API server words it.
    w.sim
        .set_pdb_min_available(w.cluster, DOCFAST_NAMESPACE, DOCFAST, 2);
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": victim, "namespace": DOCFAST_NAMESPACE}});
    let evict_path = format!("/api/v1/namespaces/{DOCFAST_NAMESPACE}/pods/{victim}/eviction");
    let refused = expect(
        &w,
        429,
        "POST",
        &evict_path,
        Some(("application/json", &eviction)),
    );
    assert_eq!(
        refused["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        refused["details"]["causes"][0]["reason"],
        "DisruptionBudget"
    );
    assert_eq!(
        refused["details"]["causes"][0]["message"],
        "The disruption budget docfast needs 2 healthy pods and has 2 currently"
    );
    assert_eq!(
        pods_on(&w, "k3s-w1").len(),
        1,
        "a refused eviction leaves the pod"
    );

    // With minAvailable 1 it is allowed; the replacement cannot go to the cordoned worker
    // nor the tainted server. Slow pod starts keep the replacement unready meanwhile.
    w.sim
        .set_pdb_min_available(w.cluster, DOCFAST_NAMESPACE, DOCFAST, 1);
    w.sim.set_pod_start_delay(Duration::from_secs(3));
    expect(
        &w,
        201,
        "POST",
        &evict_path,
        Some(("application/json", &eviction)),
    );
    // Terminating until k3s-w1's kubelet has stopped it, then gone.
    let pod_path = format!("/api/v1/namespaces/{DOCFAST_NAMESPACE}/pods/{victim}");
    let evicted: Pod = serde_json::from_value(expect(&w, 200, "GET", &pod_path, None)).unwrap();
    assert!(evicted.metadata.deletion_timestamp.is_some());
    assert!(wait(Duration::from_secs(10), || api(
        &w, MGR, "GET", &pod_path, None
    )
    .is_ok_and(|(code, _)| code == 404)));
    expect(
        &w,
        404,
        "POST",
        &evict_path,
        Some(("application/json", &eviction)),
    );
    let pdb: PodDisruptionBudget = serde_json::from_value(expect(
        &w,
        200,
        "GET",
        "/apis/policy/v1/namespaces/docfast/poddisruptionbudgets/docfast",
        None,
    ))
    .unwrap();
    let st = pdb.status.unwrap();
    assert_eq!((st.current_healthy, st.disruptions_allowed), (1, 0));
    // The other pod may not go while its replacement is not Ready.
    let other = on_w2[0].metadata.name.clone().unwrap();
    let refused = expect(
        &w,
        429,
        "POST",
        &format!("/api/v1/namespaces/{DOCFAST_NAMESPACE}/pods/{other}/eviction"),
        Some(("application/json", &json!({"metadata": {"name": other}}))),
    );
    assert_eq!(
        refused["details"]["causes"][0]["message"],
        "The disruption budget docfast needs 1 healthy pods and has 1 currently"
    );
    assert!(
        wait(Duration::from_secs(20), || w.sim.ready_replicas(
            w.cluster,
            DOCFAST_NAMESPACE,
            DOCFAST
        ) == 2),
        "{:?}",
        w.sim.pods(w.cluster, DOCFAST_NAMESPACE)
    );
    assert!(pods_on(&w, "k3s-w1").is_empty());
    let on_w2 = pods_on(&w, "k3s-w2");
    assert_eq!(on_w2.len(), 2);
    assert!(
        on_w2
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some(&victim))
    );
    let dep: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(expect(
        &w,
        200,
        "GET",
        "/apis/apps/v1/namespaces/docfast/deployments/docfast",
        None,
    ))
    .unwrap();
    assert_eq!(dep.status.unwrap().ready_replicas, Some(2));

    // Uncordon with a merge patch clearing the field.
    expect(
        &w,
        200,
        "PATCH",
        "/api/v1/nodes/k3s-w1",
        Some((
            "application/merge-patch+json",
            &json!({"spec": {"unschedulable": null}}),
        )),
    );
    assert!(w.sim.cordoned(w.cluster).is_empty());
}

#[test]
fn a_sqlite_server_migrates_to_etcd_and_two_joining_servers_make_three_healthy_members() {
    let mut w = ready_world(232);
    assert_eq!(w.sim.etcd_health(w.cluster), (0, 0), "SQLite at first");
    // A server cannot join a SQLite server.
    w.sim.start_k3s_host(CP2.0, CP2.1).unwrap();
    let join = server_exec(CP2.1, &format!("--server https://{MGR}:6443"));
    let err = install_server(&w, CP2.0, &join).unwrap_err().to_string();
    assert!(err.contains("uses SQLite"), "{err}");
    assert!(w.sim.node(w.cluster, CP2.0).is_none());

    // `--cluster-init` on the SQLite server migrates it: the first member, same cluster.
    install_server(&w, "k3s-mgr", &server_exec(MGR, "--cluster-init")).unwrap();
    assert_eq!(w.sim.k3s_cluster_of("k3s-mgr"), Some(w.cluster));
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .etcd_health(w.cluster)
        == (1, 1)));
    install_server(&w, CP2.0, &join).expect("joins the etcd cluster");
    w.sim.start_k3s_host(CP3.0, CP3.1).unwrap();
    // A join that fails (as a wrong token would) changes nothing; the next one works.
    w.sim.fail_next_k3s_join(CP3.0);
    let join3 = server_exec(CP3.1, &format!("--server https://{MGR}:6443"));
    let err = install_server(&w, CP3.0, &join3).unwrap_err().to_string();
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert_eq!(w.sim.etcd_health(w.cluster).1, 2);
    install_server(&w, CP3.0, &join3).expect("joins the etcd cluster");
    assert!(wait(Duration::from_secs(30), || {
        w.sim.etcd_health(w.cluster) == (3, 3) && w.sim.nodes(w.cluster).iter().all(|n| n.ready)
    }));
    let nodes: k8s_openapi::List<Node> =
        serde_json::from_value(expect(&w, 200, "GET", "/api/v1/nodes", None)).unwrap();
    let mut members: Vec<(String, String)> = nodes
        .items
        .iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .unwrap()
                .get("node-role.kubernetes.io/etcd")
                == Some(&"true".to_string())
        })
        .map(|n| {
            let a = n.metadata.annotations.as_ref().unwrap();
            (
                a["etcd.k3s.cattle.io/node-name"].clone(),
                a["etcd.k3s.cattle.io/node-address"].clone(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(members.len(), 3);
    for ((member, addr), (node, ip)) in
        members
            .iter()
            .zip([("k3s-cp2", CP2.1), ("k3s-cp3", CP3.1), ("k3s-mgr", MGR)])
    {
        assert!(member.starts_with(&format!("{node}-")), "{member}");
        assert_eq!(member.len(), node.len() + 9);
        assert_eq!(*addr, ip.to_string());
    }
    let (code, verbose) = api(&w, CP2.1, "GET", "/readyz?verbose", None).unwrap();
    assert_eq!(code, 200);
    assert!(verbose.contains("[+]etcd ok"), "{verbose}");

    // Upgrading the install re-runs the script with a new version: the binary is replaced,
    // the unit restarts, the Node reports the running version, the member stays.
    let starts = w.sim.k3s_starts("k3s-mgr");
    w.sim
        .k3s_install(
            "k3s-mgr",
            &[
                ("INSTALL_K3S_VERSION", "v1.34.5+k3s1"),
                ("INSTALL_K3S_EXEC", &server_exec(MGR, "--cluster-init")),
                ("K3S_TOKEN", &w.token),
            ],
        )
        .unwrap();
    assert_eq!(w.sim.k3s_starts("k3s-mgr"), starts + 1);
    // Its apiserver listens again a moment after the restart; ask another server meanwhile.
    let (code, text) = api(&w, CP2.1, "GET", "/api/v1/nodes/k3s-mgr", None).unwrap();
    assert_eq!(code, 200, "{text}");
    let mgr: Node = serde_json::from_str(&text).unwrap();
    assert_eq!(
        mgr.status.unwrap().node_info.unwrap().kubelet_version,
        "v1.34.5+k3s1"
    );
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .etcd_health(w.cluster)
        == (3, 3)));
}

#[test]
fn deleting_a_server_node_removes_its_member_and_quorum_follows_the_members() {
    let w = ha_world(233);
    // Leaving: stop the unit, delete the Node; k3s removes the member.
    w.sim.stop_k3s(CP3.0);
    assert_eq!(w.sim.etcd_health(w.cluster), (2, 3));
    expect(&w, 200, "DELETE", "/api/v1/nodes/k3s-cp3", None);
    expect(&w, 404, "GET", "/api/v1/nodes/k3s-cp3", None);
    assert!(
        wait(Duration::from_secs(10), || w.sim.etcd_health(w.cluster)
            == (2, 2)),
        "{:?}",
        w.sim.k3s_etcd_members(w.cluster)
    );
    assert_eq!(w.sim.k3s_etcd_members(w.cluster), ["k3s-cp2", "k3s-mgr"]);
    let (code, _) = api(&w, MGR, "GET", "/readyz", None).unwrap();
    assert_eq!(code, 200, "two of two members: quorum");

    // One of two members left: no quorum. readyz fails, writes fail, reads still answer.
    w.sim.stop_k3s(CP2.0);
    assert_eq!(w.sim.etcd_health(w.cluster), (1, 2));
    let (code, verbose) = api(&w, MGR, "GET", "/readyz?verbose", None).unwrap();
    assert_eq!(code, 500, "{verbose}");
    assert!(
        verbose.contains("[-]etcd failed: reason withheld"),
        "{verbose}"
    );
    let refused = expect(
        &w,
        500,
        "PATCH",
        "/api/v1/nodes/k3s-w1",
        Some((
            "application/merge-patch+json",
            &json!({"spec": {"unschedulable": true}}),
        )),
    );
    assert_eq!(refused["message"], "etcdserver: request timed out");
    assert!(w.sim.cordoned(w.cluster).is_empty());
    // The member set is unchanged without quorum, and comes back healthy with cp2.
    w.sim
        .k3s_install(
            CP2.0,
            &[
                ("INSTALL_K3S_VERSION", K3S_VERSION),
                (
                    "INSTALL_K3S_EXEC",
                    &server_exec(CP2.1, &format!("--server https://{MGR}:6443")),
                ),
                ("K3S_TOKEN", &w.token),
            ],
        )
        .expect("a member restarts from its data dir");
    assert_eq!(w.sim.etcd_health(w.cluster), (2, 2));
    let (code, _) = api(&w, MGR, "GET", "/readyz", None).unwrap();
    assert_eq!(code, 200);
}

#[test]
fn a_rebuilt_host_is_refused_by_its_node_password_until_its_node_is_deleted() {
    let mut w = ready_world(234);
    assert!(
        w.sim
            .host("k3s-w2")
            .unwrap()
            .etc_rancher()
            .join("node/password")
            .exists()
    );
    w.sim.remove_host("k3s-w2");
    let keys = std::fs::read_to_string(w.sim.client_key().with_extension("pub")).unwrap();
    w.sim
        .boot_k3s_host("k3s-w2", Ipv4Addr::new(10, 0, 1, 7), &keys)
        .unwrap();
    let agent = [
        ("INSTALL_K3S_VERSION", K3S_VERSION),
        (
            "INSTALL_K3S_EXEC",
            "agent --flannel-iface enp7s0 --node-ip 10.0.1.7",
        ),
        ("K3S_URL", "https://10.0.1.5:6443"),
        ("K3S_TOKEN", w.token.as_str()),
    ];
    let err = w.sim.k3s_install("k3s-w2", &agent).unwrap_err().to_string();
    assert!(
        err.contains("Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-passwd entry"),
        "{err}"
    );
    expect(&w, 200, "DELETE", "/api/v1/nodes/k3s-w2", None);
    w.sim
        .k3s_install("k3s-w2", &agent)
        .expect("accepted once the Node was deleted");
    assert!(wait(Duration::from_secs(20), || w
        .sim
        .node(w.cluster, "k3s-w2")
        .is_some_and(|n| n.ready)));
}

#[test]
fn a_rebuilt_cluster_init_server_joins_instead_of_forming_a_new_cluster() {
    let mut w = ha_world(235);
    // k3s-mgr leaves: stopped, its Node deleted, its member removed.
    w.sim.stop_k3s("k3s-mgr");
    let before = w.sim.kubelet_status_updates("k3s-w1");
    expect_on(&w, CP2.1, 200, "DELETE", "/api/v1/nodes/k3s-mgr");
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .etcd_health(w.cluster)
        == (2, 2)));
    // The agents joined through k3s-mgr but their load balancer knows every server.
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .kubelet_status_updates("k3s-w1")
        >= before + 3));
    assert!(w.sim.node(w.cluster, "k3s-w1").unwrap().ready);
    w.sim.remove_host("k3s-mgr");
    let keys = std::fs::read_to_string(w.sim.client_key().with_extension("pub")).unwrap();
    w.sim.boot_k3s_host("k3s-mgr", MGR, &keys).unwrap();
    install_server(
        &w,
        "k3s-mgr",
        &server_exec(
            MGR,
            &format!("--cluster-init --server https://{}:6443", CP2.1),
        ),
    )
    .expect("joins");
    assert_eq!(w.sim.k3s_cluster_of("k3s-mgr"), Some(w.cluster));
    assert!(wait(Duration::from_secs(30), || {
        w.sim.etcd_health(w.cluster) == (3, 3) && w.sim.nodes(w.cluster).iter().all(|n| n.ready)
    }));
}

fn expect_on(w: &HetznerK3s, server: Ipv4Addr, want: u16, method: &str, path: &str) {
    let (code, text) = api(w, server, method, path, None).expect("apiserver answers");
    assert_eq!(code, want, "{method} {path}: {text}");
}

/// Runs `cmd` on `host` as root with the ssh CLI: `(exit code, stdout + stderr)`.
fn ssh(w: &HetznerK3s, host: &str, cmd: &str) -> (i32, String) {
    let h = w.sim.host(host).expect("host");
    let out = std::process::Command::new("ssh")
        .arg("-i")
        .arg(w.sim.client_key())
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            w.sim.known_hosts().display()
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
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_uninstall_script_removes_k3s_but_keeps_the_node_password_so_a_reinstall_is_accepted() {
    let w = ready_world(236);
    let (code, text) = ssh(
        &w,
        "k3s-w1",
        "test -x /usr/local/bin/k3s-agent-uninstall.sh && test -x /usr/local/bin/k3s-killall.sh && k3s-agent-uninstall.sh",
    );
    assert_eq!(code, 0, "{text}");
    let (code, text) = ssh(
        &w,
        "k3s-w1",
        "test ! -e /usr/local/bin/k3s && test ! -e /etc/systemd/system/k3s-agent.service && test -s /etc/rancher/node/password",
    );
    assert_eq!(code, 0, "{text}");
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .node(w.cluster, "k3s-w1")
        .is_some_and(|n| !n.ready)));
    w.sim
        .k3s_install(
            "k3s-w1",
            &[
                ("INSTALL_K3S_VERSION", K3S_VERSION),
                (
                    "INSTALL_K3S_EXEC",
                    "agent --flannel-iface enp7s0 --node-ip 10.0.1.6",
                ),
                ("K3S_URL", "https://10.0.1.5:6443"),
                ("K3S_TOKEN", w.token.as_str()),
            ],
        )
        .expect("the same host's password is accepted");
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .node(w.cluster, "k3s-w1")
        .is_some_and(|n| n.ready)));
    let (code, text) = ssh(&w, "k3s-mgr", "k3s kubectl get nodes");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("k3s-w1   Ready"), "{text}");
}

#[test]
fn pods_of_a_node_not_ready_for_long_are_replaced_on_a_ready_worker() {
    let w = ready_world(237);
    w.sim.set_pod_eviction_timeout(Duration::from_secs(1));
    let lost = pods_on(&w, "k3s-w2")[0].metadata.name.clone().unwrap();
    w.sim.stop_k3s("k3s-w2");
    assert!(
        wait(Duration::from_secs(20), || {
            let pods: Vec<_> = w
                .sim
                .pods(w.cluster, DOCFAST_NAMESPACE)
                .into_iter()
                .filter(|p| !p.terminating)
                .collect();
            pods.len() == 2
                && pods
                    .iter()
                    .all(|p| p.ready && p.node.as_deref() == Some("k3s-w1"))
        }),
        "{:?}",
        w.sim.pods(w.cluster, DOCFAST_NAMESPACE)
    );
    // The lost pod stays Terminating: its kubelet is not there to stop it.
    assert!(
        w.sim
            .pods(w.cluster, DOCFAST_NAMESPACE)
            .iter()
            .any(|p| p.name == lost && p.terminating && !p.ready)
    );
    // The stopped node's Node stays (NotReady); only its pods moved.
    assert!(!w.sim.node(w.cluster, "k3s-w2").unwrap().ready);
}

#[test]
fn a_deleted_node_whose_k3s_still_runs_registers_again_but_a_running_etcd_server_exits() {
    let w = ha_world(238);
    // An agent's kubelet registers its Node again (why leaving stops the unit first).
    expect(&w, 200, "DELETE", "/api/v1/nodes/k3s-w1", None);
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .node(w.cluster, "k3s-w1")
        .is_some_and(|n| n.ready)));
    // A server's member is removed with its Node, and its k3s then exits.
    expect(&w, 200, "DELETE", "/api/v1/nodes/k3s-cp3", None);
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .etcd_health(w.cluster)
        == (2, 2)));
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .k3s_journal(CP3.0)
        .iter()
        .any(|l| l.contains(
            "the member has been permanently removed from the cluster"
        ))));
    assert!(w.sim.node(w.cluster, CP3.0).is_none());
}

#[test]
fn a_rebooted_agent_starts_k3s_again_and_rejoins_through_another_server_while_the_first_is_down() {
    let mut w = ha_world(239);
    w.sim.stop_k3s("k3s-mgr");
    let starts = w.sim.k3s_starts("k3s-w1");
    w.sim.stop_host("k3s-w1");
    assert!(wait(Duration::from_secs(10), || w
        .sim
        .node(w.cluster, "k3s-w1")
        .is_some_and(|n| !n.ready)));
    w.sim
        .start_k3s_host("k3s-w1", Ipv4Addr::new(10, 0, 1, 6))
        .unwrap();
    assert_eq!(
        w.sim.k3s_starts("k3s-w1"),
        starts + 1,
        "systemd started k3s-agent at boot"
    );
    assert!(
        wait(Duration::from_secs(10), || w
            .sim
            .node(w.cluster, "k3s-w1")
            .is_some_and(|n| n.ready)),
        "{:?}",
        w.sim.k3s_journal("k3s-w1")
    );
}
