//! hetzner-k3s's simulated hosts follow the Hetzner simulator's servers: a server created
//! with cairn's SSH key and the stack's cloud-init boots into a fresh host at its private IP
//! that accepts exactly that key and has k3s's install script; deleted, its host goes, and a
//! server made again under the same name gets a new host (new host key, same SSH port). A
//! server whose cloud-init does not install the script gets no host. Needs root (real sshd
//! per host); runs in the loopback-only namespace.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stacks::sims::{HetznerK3sWorld, SimKnobs, hetzner_k3s_addr_map};
use stacks::stacks::hetzner_k3s;

async fn call(sim: &cairn_hetzner_sim::SimHandle, method: &str, path: &str, body: Value) -> Value {
    let method: reqwest::Method = method.parse().unwrap();
    loop {
        let r = reqwest::Client::new()
            .request(method.clone(), format!("{}{path}", sim.endpoint))
            .bearer_auth(&sim.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        // A resource still locked by its previous action: try again.
        if status.as_u16() == 423 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        return v;
    }
}

async fn wait(world: &HetznerK3sWorld, name: &str, present: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if world.nodes.lock().host(name).is_some() == present {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Runs `cmd` on the host at `declared` as root with `key`, checking its host key strictly.
fn ssh(world: &HetznerK3sWorld, declared: Ipv4Addr, key: &std::path::Path, cmd: &str) -> String {
    let (ip, port, known) = {
        let sim = world.nodes.lock();
        let h = sim
            .hosts()
            .iter()
            .find(|h| h.declared() == declared)
            .expect("a host at the address");
        (h.listen().ip(), h.port(), sim.known_hosts())
    };
    let out = Command::new("ssh")
        .arg("-i")
        .arg(key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .arg("-o")
        .arg(format!("HostKeyAlias={declared}"))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-F",
            "/dev/null",
            "-p",
        ])
        .arg(port.to_string())
        .arg(format!("root@{ip}"))
        .arg(cmd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_cairns_key_and_cloud_init_becomes_a_k3s_host_and_goes_with_it() {
    let state = tempfile::tempdir().unwrap();
    // SAFETY: set before anything else in this test process reads the environment.
    unsafe { std::env::set_var("CAIRN_STATE_DIR", state.path()) };
    let knobs = SimKnobs {
        boot_delay: Duration::from_millis(300),
        ..Default::default()
    };
    let world = HetznerK3sWorld::start(&knobs, &hetzner_k3s_addr_map())
        .await
        .unwrap();
    let sim = &world.hetzner.handle;
    let key = world.client_key();
    let public = hetzner_k3s::public_key_of(&key).unwrap();
    assert!(world.nodes.lock().host("k3s-mgr").is_some());
    assert!(world.nodes.lock().host("k3s-cp2").is_none());
    let ports = |w: &HetznerK3sWorld| {
        let mut p: Vec<String> = w
            .port_map()
            .to_string()
            .split(',')
            .map(String::from)
            .collect();
        p.sort();
        p
    };
    let port_map = ports(&world);

    let net = sim.with_world(|w| w.find("networks", "k3s-net")).unwrap();
    call(
        sim,
        "POST",
        "/ssh_keys",
        json!({"name": "cairn", "public_key": public}),
    )
    .await;
    // As cairn makes a server: created, then its network attached with its fixed IP.
    let create = |name: &'static str, ip: &'static str, user_data: String| async move {
        let made = call(
            sim,
            "POST",
            "/servers",
            json!({"name": name, "server_type": "cax11", "image": "ubuntu-24.04",
                   "location": "nbg1", "ssh_keys": ["cairn"], "user_data": user_data}),
        )
        .await;
        let id = made["server"]["id"].as_u64().unwrap();
        call(
            sim,
            "POST",
            &format!("/servers/{id}/actions/attach_to_network"),
            json!({"network": net, "ip": ip}),
        )
        .await;
        id
    };
    let id = create("k3s-cp2", "10.0.1.8", hetzner_k3s::user_data()).await;
    let ip = Ipv4Addr::new(10, 0, 1, 8);
    assert!(
        wait(&world, "k3s-cp2", true).await,
        "the booted server became a host"
    );
    let fingerprint = world
        .nodes
        .lock()
        .host("k3s-cp2")
        .unwrap()
        .fingerprint()
        .to_string();
    assert_eq!(
        ssh(
            &world,
            ip,
            &key,
            "test -x /usr/local/sbin/k3s-install.sh && echo script"
        ),
        "script\n",
        "cloud-init put k3s's install script there"
    );

    call(sim, "DELETE", &format!("/servers/{id}"), Value::Null).await;
    assert!(
        wait(&world, "k3s-cp2", false).await,
        "the deleted server's host is gone"
    );

    // Made again under the same name: a fresh host, where the port map already said.
    create("k3s-cp2", "10.0.1.8", hetzner_k3s::user_data()).await;
    assert!(
        wait(&world, "k3s-cp2", true).await,
        "the new server became a host"
    );
    assert_ne!(
        world.nodes.lock().host("k3s-cp2").unwrap().fingerprint(),
        fingerprint,
        "a new machine has a new host key"
    );
    assert_eq!(ports(&world), port_map);
    assert_eq!(
        ssh(&world, ip, &key, "test -x /usr/local/sbin/k3s-install.sh && echo script"),
        "script\n",
        "the new host's key is known and cairn's key accepted"
    );

    // Without the install script in its cloud-init, no k3s host boots.
    create("k3s-cp3", "10.0.1.9", "#cloud-config\n".into()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(world.nodes.lock().host("k3s-cp3").is_none());
}
