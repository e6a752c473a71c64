//! The homelab's simulated hosts follow the Proxmox simulator's VMs: a cloned VM that boots
//! becomes a host accepting exactly its cloud-init key; stopped and destroyed, it goes.
//! Needs root (real sshd per host); runs in the loopback-only namespace.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use stacks::sims::HomelabNodes;

fn wait(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_booted_vm_becomes_a_host_and_goes_with_its_vm() {
    let proxmox = cairn_proxmox_sim::ProxmoxSim::start(Default::default())
        .await
        .unwrap();
    let nodes = HomelabNodes::start(
        "10.0.20.0/24=127.212.20.0/24",
        &proxmox,
        Duration::from_millis(50),
    )
    .unwrap();
    let has = |name: &str| nodes.nodes.lock().unwrap().host(name).is_some();
    assert!(has("k8s-master") && has("k8s-worker-4"));
    assert!(!has("k8s-master-2"));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let encoded: String = public
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    proxmox.with_world(|w| {
        let mut vm = w.vms[&200].clone();
        vm.config.insert("name".into(), "k8s-master-2".into());
        vm.config
            .insert("ipconfig0".into(), "ip=10.0.20.110/24,gw=10.0.20.1".into());
        vm.config.insert("sshkeys".into(), encoded);
        w.vms.insert(250, vm);
    });
    let wait_for = |want: bool| {
        let n = nodes.nodes.clone();
        tokio::task::spawn_blocking(move || {
            wait(|| n.lock().unwrap().host("k8s-master-2").is_some() == want)
        })
    };
    assert!(wait_for(true).await.unwrap(), "the booted VM became a host");
    let (port, ip, known_hosts) = {
        let sim = nodes.nodes.lock().unwrap();
        let h = sim.host("k8s-master-2").unwrap();
        assert_eq!(h.declared(), Ipv4Addr::new(10, 0, 20, 110));
        (h.port(), h.listen().ip(), sim.known_hosts())
    };
    let out = Command::new("ssh")
        .arg("-i")
        .arg(&key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-o")
        .arg("HostKeyAlias=10.0.20.110")
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
        .arg(format!("ubuntu@{ip}"))
        .arg("kubeadm version -o short")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v1.34.1\n");
    proxmox.with_world(|w| w.vms.remove(&250));
    assert!(
        wait_for(false).await.unwrap(),
        "the destroyed VM's host is gone"
    );
}
