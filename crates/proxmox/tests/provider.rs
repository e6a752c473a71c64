//! The provider through the `cairn_core::Provider` trait (and the engine's plan/apply)
//! against the simulator seeded with the homelab: clones, no perpetual diff, in-place and
//! replace changes, plan-time refusals, and convergence under injected faults.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::diff::diff;
use cairn_core::tls::TlsTrust;
use cairn_core::{
    Address, Change, Marker, ObserveRequest, Observed, PlannedChange, Provider, Resource,
};
use cairn_proxmox::{Auth, ClientConfig, DiskSlot, IpConfig, ProxmoxProvider, PveClient, Vm};
use cairn_proxmox_sim::{Faults, ProxmoxSim, SimConfig, SimHandle, TaskFault};
use serde_json::Value;

async fn sim() -> SimHandle {
    ProxmoxSim::start(SimConfig {
        task_duration: Duration::from_millis(30),
        clone_duration: Duration::from_millis(150),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client_config(sim: &SimHandle) -> ClientConfig {
    let mut cfg = ClientConfig::new(
        sim.endpoint.clone(),
        Auth::Token(sim.token.clone()),
        TlsTrust::Fingerprint(sim.fingerprint.clone().unwrap()),
    );
    cfg.poll_interval = Duration::from_millis(20);
    cfg.backoff = Duration::from_millis(20);
    cfg.task_timeout = Duration::from_secs(20);
    cfg
}

fn provider(sim: &SimHandle) -> ProxmoxProvider {
    ProxmoxProvider::new(PveClient::new(client_config(sim)).unwrap())
}

fn master(vmid: u32, ip: &str, memory_gib: u64) -> Vm {
    let mut vm = Vm::cloned(vmid, &format!("k8s-master-{vmid}"), "pve", 9000);
    vm.cores = 8;
    vm.memory = memory_gib * 1024;
    vm.disks.insert(DiskSlot::scsi(0), "64G".into());
    let nic = vm.networks.get_mut("net0").unwrap();
    nic.bridge = "vmbr1".into();
    nic.tag = Some(20);
    vm.cloud_init.ciuser = Some("ubuntu".into());
    vm.cloud_init.sshkeys =
        vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps+key/x= ops@homelab".into()];
    vm.cloud_init.ipconfig.insert(
        "ipconfig0".into(),
        IpConfig {
            ip: format!("{ip}/24"),
            gw: Some("10.0.20.1".into()),
        },
    );
    vm.cloud_init.nameserver = Some("10.0.20.1".into());
    vm.tags = vec!["master".into(), "k8s".into()];
    vm.description = "control plane".into();
    vm
}

fn marker() -> Marker {
    Marker::created("homelab-ha", Some("f00d".into()))
}

async fn create(p: &ProxmoxProvider, vm: &Vm) -> Result<Value, cairn_core::ProviderError> {
    let address = Address::new(Vm::KIND, &vm.name);
    let desired = serde_json::to_value(vm).unwrap();
    let key = vm.key();
    let m = marker();
    p.create(Change {
        address: &address,
        kind: Vm::KIND,
        key: &key,
        desired: Some(&desired),
        prior: None,
        marker: &m,
        changed: &[],
    })
    .await
}

async fn observe(p: &ProxmoxProvider, keys: &[&str]) -> Vec<Observed> {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    p.observe(ObserveRequest {
        kind: Vm::KIND,
        keys: &keys,
        stack: "homelab-ha",
    })
    .await
    .unwrap()
}

fn vm_count_named(sim: &SimHandle, name: &str) -> usize {
    sim.world()
        .vms
        .values()
        .filter(|v| v.config.get("name").is_some_and(|n| n == name))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloning_two_masters_then_observing_again_shows_no_diff() {
    let sim = sim().await;
    let p = provider(&sim);
    let (a, b) = (master(205, "10.0.20.110", 8), master(206, "10.0.20.111", 8));
    let (ra, rb) = tokio::join!(create(&p, &a), create(&p, &b));
    ra.unwrap();
    rb.unwrap();
    sim.reset_counters();
    let seen = observe(&p, &["205", "206"]).await;
    assert_eq!(seen.len(), 2);
    for (o, spec) in seen.iter().zip([&a, &b]) {
        let d = diff(
            &serde_json::to_value(spec).unwrap(),
            &o.value,
            &Vm::schema(),
            &[],
        );
        assert!(d.is_empty(), "perpetual diff on {}: {d:#?}", o.key);
        assert_eq!(o.marker, Some(marker()));
        assert_eq!(o.value["state"], "running");
    }
    assert_eq!(seen[0].value["ipv4"], "10.0.20.110");
    assert_eq!(seen[1].value["ipv4"], "10.0.20.111");
    // Linked clones of the template, tags normalised with the marker tag, keys encoded.
    let w = sim.world();
    let cfg = &w.vms[&205].config;
    assert!(
        cfg["scsi0"].starts_with("local-lvm:base-9000-disk-0/vm-205-disk-0"),
        "{cfg:?}"
    );
    assert!(cfg["scsi0"].ends_with("size=64G"));
    assert_eq!(cfg["tags"], "cairn.homelab-ha;k8s;master");
    assert!(cfg["sshkeys"].contains("%20") && !cfg.contains_key("lock"));
    // Observe = one cluster-resources call plus one config read per declared/owned VM.
    let c = sim.counters();
    assert_eq!(c["GET /cluster/resources"], 1, "{c:?}");
    assert_eq!(c["GET /nodes/{node}/qemu/{vmid}/config"], 2, "{c:?}");
    assert_eq!(sim.counters().writes, 0);
    // Owned but undeclared VMs are found by their marker tag in the same single list call.
    let owned = observe(&p, &[]).await;
    let keys: Vec<&str> = owned.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["205", "206"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_the_hand_made_master_200_shows_no_diff() {
    let sim = sim().await;
    let p = provider(&sim);
    let mut vm = master(200, "10.0.20.100", 32);
    vm.name = "k8s-master".into();
    vm.clone = None;
    vm.cloud_init.sshkeys.clear();
    vm.cloud_init.nameserver = None;
    vm.tags = vec!["k8s".into()];
    vm.description = String::new();
    let seen = observe(&p, &["200"]).await.remove(0);
    assert_eq!(seen.marker, None);
    let d = diff(
        &serde_json::to_value(&vm).unwrap(),
        &seen.value,
        &Vm::schema(),
        &[],
    );
    assert!(d.is_empty(), "{d:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_given_by_name_is_looked_up_and_cloned() {
    let sim = sim().await;
    let p = provider(&sim);
    let mut vm = master(207, "10.0.20.112", 2);
    vm.clone = Some(cairn_proxmox::CloneFrom {
        vmid: None,
        name: Some("ubuntu-2404-cloudinit".into()),
        mode: cairn_proxmox::CloneMode::Full,
    });
    create(&p, &vm).await.unwrap();
    let seen = observe(&p, &["207"]).await.remove(0);
    assert!(
        diff(
            &serde_json::to_value(&vm).unwrap(),
            &seen.value,
            &Vm::schema(),
            &[]
        )
        .is_empty()
    );
    // A full clone owns its disk outright.
    assert!(sim.world().vms[&207].config["scsi0"].starts_with("local-lvm:vm-207-disk-0,"));
    let templates = p
        .observe(ObserveRequest {
            kind: cairn_proxmox::Template::KIND,
            keys: &["ubuntu-2404-cloudinit".to_string()],
            stack: "homelab-ha",
        })
        .await
        .unwrap();
    assert_eq!(templates[0].value["vmid"], 9000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_change_is_in_place_pending_until_restart_and_then_clean() {
    let sim = sim().await;
    let p = provider(&sim);
    let vm = master(205, "10.0.20.110", 8);
    create(&p, &vm).await.unwrap();
    let prior = observe(&p, &["205"]).await.remove(0);
    let mut bigger = vm.clone();
    bigger.memory = 12 * 1024;
    let desired = serde_json::to_value(&bigger).unwrap();
    let d = diff(&desired, &prior.value, &Vm::schema(), &[]);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].path, "memory");
    assert!(!d[0].forces_replace && d[0].needs_restart);
    let address = Address::new(Vm::KIND, "m");
    let m = marker();
    let changed = vec!["memory".to_string()];
    let after = p
        .update(Change {
            address: &address,
            kind: Vm::KIND,
            key: "205",
            desired: Some(&desired),
            prior: Some(&prior),
            marker: &m,
            changed: &changed,
        })
        .await
        .unwrap();
    assert!(diff(&desired, &after, &Vm::schema(), &[]).is_empty());
    let again = observe(&p, &["205"]).await.remove(0);
    assert!(diff(&desired, &again.value, &Vm::schema(), &[]).is_empty());
    // Running VM: Proxmox keeps the new size pending; the VM was neither recreated nor cloned again.
    let w = sim.world();
    assert_eq!(
        w.vms[&205].pending.get("memory").map(String::as_str),
        Some("12288")
    );
    assert_eq!(sim.counters()["POST /nodes/{node}/qemu/{vmid}/clone"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_clone_source_forces_a_replace() {
    let sim = sim().await;
    let p = provider(&sim);
    let vm = master(205, "10.0.20.110", 8);
    create(&p, &vm).await.unwrap();
    let seen = observe(&p, &["205"]).await.remove(0);
    let mut other = vm.clone();
    other.clone.as_mut().unwrap().vmid = Some(9001.into());
    let d = diff(
        &serde_json::to_value(&other).unwrap(),
        &seen.value,
        &Vm::schema(),
        &[],
    );
    assert!(
        !d.is_empty() && d.iter().all(|c| c.forces_replace),
        "{d:#?}"
    );
    assert!(d.iter().any(|c| c.path.starts_with("clone")));
}

fn planned<'a>(
    addr: &'a Address,
    key: &'a str,
    before: Option<&'a Observed>,
    after: Option<&'a Value>,
) -> PlannedChange<'a> {
    PlannedChange {
        kind: Vm::KIND,
        key,
        address: addr,
        before,
        after,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_shrink_is_refused_at_plan_time_naming_the_disk() {
    let sim = sim().await;
    let p = provider(&sim);
    let seen = observe(&p, &["200"]).await.remove(0);
    assert_eq!(seen.value["disks"]["scsi0"], "64G");
    let mut after = seen.value.clone();
    after["disks"]["scsi0"] = "32G".into();
    let addr = Address::new(Vm::KIND, "k8s-master");
    let checks = p
        .check_plan(
            &[planned(&addr, "200", Some(&seen), Some(&after))],
            &BTreeMap::new(),
        )
        .await
        .unwrap();
    let shrink = checks.iter().find(|c| !c.passed).expect("a failed check");
    assert!(
        shrink.message.contains("disks.scsi0") && shrink.message.contains("from 64G to 32G"),
        "{}",
        shrink.message
    );
    assert_eq!(sim.counters().writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_32_gib_masters_overcommit_the_seeded_host_and_nothing_is_written() {
    let sim = sim().await;
    let p = provider(&sim);
    let existing = observe(&p, &["200"]).await.remove(0);
    let keep = existing.value.clone();
    let (a, b) = (
        serde_json::to_value(master(205, "10.0.20.110", 32)).unwrap(),
        serde_json::to_value(master(206, "10.0.20.111", 32)).unwrap(),
    );
    let (x, y, z) = (
        Address::new(Vm::KIND, "k8s-master"),
        Address::new(Vm::KIND, "k8s-master-2"),
        Address::new(Vm::KIND, "k8s-master-3"),
    );
    let changes = [
        planned(&x, "200", Some(&existing), Some(&keep)),
        planned(&y, "205", None, Some(&a)),
        planned(&z, "206", None, Some(&b)),
    ];
    let checks = p.check_plan(&changes, &BTreeMap::new()).await.unwrap();
    assert_eq!(checks.len(), 1);
    assert!(!checks[0].passed);
    assert!(
        checks[0].message.starts_with(
            "node pve: 262 GiB committed + 64 GiB planned = 326 GiB > 267 GiB physical (ratio 1.00)"
        ),
        "{}",
        checks[0].message
    );
    assert!(
        checks[0]
            .message
            .contains("proxmox_vm.k8s-master-2 (VM 205, +32 GiB)")
    );
    assert_eq!(sim.counters().writes, 0, "{:?}", sim.counters());

    // Right-sized: three 12 GiB masters (200 shrinks from 32) fit: 262 - 20 + 24 = 266.
    let mut smaller = keep.clone();
    smaller["memory"] = (12 * 1024).into();
    let (a, b) = (
        serde_json::to_value(master(205, "10.0.20.110", 12)).unwrap(),
        serde_json::to_value(master(206, "10.0.20.111", 12)).unwrap(),
    );
    let changes = [
        planned(&x, "200", Some(&existing), Some(&smaller)),
        planned(&y, "205", None, Some(&a)),
        planned(&z, "206", None, Some(&b)),
    ];
    let checks = p.check_plan(&changes, &BTreeMap::new()).await.unwrap();
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    assert!(
        checks[0]
            .message
            .contains("262 GiB committed + 4 GiB planned = 266 GiB"),
        "{}",
        checks[0].message
    );
    // A ratio setting lets 32 GiB masters through.
    let settings = BTreeMap::from([("proxmox.memory_ratio".to_string(), "1.25".to_string())]);
    let checks = p
        .check_plan(
            &[planned(
                &y,
                "205",
                None,
                Some(&serde_json::to_value(master(205, "10.0.20.110", 32)).unwrap()),
            )],
            &settings,
        )
        .await
        .unwrap();
    assert!(checks[0].passed, "{checks:?}");
    assert_eq!(sim.counters().writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_converge_under_lock_contention_and_5xx_without_duplicates() {
    let sim = sim().await;
    sim.set_faults(Faults {
        seed: 7,
        lock_contention_rate: 0.3,
        error_rate: 0.1,
        ..Faults::default()
    });
    let p = provider(&sim);
    let (a, b) = (master(205, "10.0.20.110", 8), master(206, "10.0.20.111", 8));
    let (ra, rb) = tokio::join!(create(&p, &a), create(&p, &b));
    // An injected 5xx on a write is reported (never blindly retried); a second apply, once
    // the faults are gone, converges. (Whether the repair itself would draw a fault depends
    // only on the generator's sequence, so it is not left to chance.)
    sim.set_faults(Faults::default());
    for (r, spec) in [(ra, &a), (rb, &b)] {
        if r.is_err() {
            let exists = !observe(&p, &[&spec.key()]).await.is_empty();
            if exists {
                let prior = observe(&p, &[&spec.key()]).await.remove(0);
                let desired = serde_json::to_value(spec).unwrap();
                let address = Address::new(Vm::KIND, &spec.name);
                let m = marker();
                p.update(Change {
                    address: &address,
                    kind: Vm::KIND,
                    key: &spec.key(),
                    desired: Some(&desired),
                    prior: Some(&prior),
                    marker: &m,
                    changed: &[],
                })
                .await
                .unwrap();
            } else {
                create(&p, spec).await.unwrap();
            }
        }
    }
    let seen = observe(&p, &["205", "206"]).await;
    for (o, spec) in seen.iter().zip([&a, &b]) {
        let d = diff(
            &serde_json::to_value(spec).unwrap(),
            &o.value,
            &Vm::schema(),
            &[],
        );
        assert!(d.is_empty(), "{}: {d:#?}", o.key);
    }
    assert_eq!(vm_count_named(&sim, "k8s-master-205"), 1);
    assert_eq!(vm_count_named(&sim, "k8s-master-206"), 1);
    let c = sim.counters();
    assert!(c.get("POST /nodes/{node}/qemu/{vmid}/clone") >= 2, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_clone_reports_the_tasks_own_error_text() {
    let sim = sim().await;
    let text = "clone failed: lvcreate 'pve/vm-205-disk-0' error: Volume group \"pve\" has insufficient free space";
    sim.set_faults(Faults {
        fail_tasks: vec![TaskFault {
            kind: "qmclone".into(),
            message: text.into(),
            count: 1,
        }],
        ..Faults::default()
    });
    let p = provider(&sim);
    let err = create(&p, &master(205, "10.0.20.110", 8))
        .await
        .unwrap_err();
    assert!(err.message.contains(text), "{err}");
    assert!(
        err.message.contains("TASK ERROR"),
        "log tail missing: {err}"
    );
    assert!(!sim.world().vms.contains_key(&205));
    // The next attempt succeeds and creates exactly one VM.
    create(&p, &master(205, "10.0.20.110", 8)).await.unwrap();
    assert_eq!(vm_count_named(&sim, "k8s-master-205"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_clones_of_one_template_hit_lock_timeouts_without_node_serialisation() {
    let sim = sim().await;
    let mut cfg = client_config(&sim);
    cfg.node_write_concurrency = 4;
    cfg.retries = 1;
    let p = Arc::new(ProxmoxProvider::new(PveClient::new(cfg).unwrap()));
    let specs: Vec<Vm> = (0..3)
        .map(|i| master(205 + i, &format!("10.0.20.{}", 110 + i), 2))
        .collect();
    let results = futures::future::join_all(specs.iter().map(|s| create(&p, s))).await;
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err())
        .map(|e| e.message)
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e
                .contains("can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout")),
        "{errors:?}"
    );
    // The default (one write at a time per node) does not fight over the lock.
    let p = provider(&sim);
    let more: Vec<Vm> = (0..3)
        .map(|i| master(215 + i, &format!("10.0.20.{}", 120 + i), 2))
        .collect();
    for r in futures::future::join_all(more.iter().map(|s| create(&p, s))).await {
        r.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_auth_observes_and_writes_with_csrf() {
    let sim = sim().await;
    let cfg = ClientConfig::new(
        sim.endpoint.clone(),
        Auth::Ticket {
            user: "root@pam".into(),
            password: sim.basic_auth.as_ref().unwrap().1.clone(),
        },
        TlsTrust::Fingerprint(sim.fingerprint.clone().unwrap()),
    );
    let debug = format!("{cfg:?}");
    assert!(
        !debug.contains(&sim.basic_auth.as_ref().unwrap().1),
        "{debug}"
    );
    let client = PveClient::new(cfg).unwrap();
    let res = cairn_proxmox::api::vm_resources(&client).await.unwrap();
    assert!(res.iter().any(|r| r.vmid == 9000 && r.template));
    client
        .request(
            reqwest::Method::PUT,
            "/nodes/pve/qemu/200/config",
            &[("description".into(), "via ticket".into())],
        )
        .await
        .unwrap();
    assert_eq!(sim.world().vms[&200].config["description"], "via ticket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pinned_fingerprint_is_refused() {
    let sim = sim().await;
    let mut cfg = client_config(&sim);
    cfg.trust = TlsTrust::Fingerprint(["AB"; 32].join(":"));
    cfg.retries = 1;
    let err = cairn_proxmox::api::vm_resources(&PveClient::new(cfg).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("transport"), "{err}");
    let token_secret = sim.token.split_once('=').unwrap().1;
    let dbg = format!("{:?}", PveClient::new(client_config(&sim)).unwrap());
    assert!(!dbg.contains(token_secret), "{dbg}");
}

async fn update_memory(
    p: &ProxmoxProvider,
    vm: &Vm,
    gib: u64,
) -> Result<Value, cairn_core::ProviderError> {
    let prior = observe(p, &[&vm.key()]).await.remove(0);
    let mut next = vm.clone();
    next.memory = gib * 1024;
    let desired = serde_json::to_value(&next).unwrap();
    let address = Address::new(Vm::KIND, &vm.name);
    let m = marker();
    let changed = vec!["memory".to_string()];
    p.update(Change {
        address: &address,
        kind: Vm::KIND,
        key: &vm.key(),
        desired: Some(&desired),
        prior: Some(&prior),
        marker: &m,
        changed: &changed,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_rereads_and_never_overwrites_a_concurrent_change() {
    let sim = sim().await;
    let p = provider(&sim);
    // Stopped, so writes land in the current config rather than in pending.
    let mut vm = master(205, "10.0.20.110", 8);
    vm.state = cairn_proxmox::PowerState::Stopped;
    create(&p, &vm).await.unwrap();
    let tamper = |key: &str, value: &str| Faults {
        tamper: vec![cairn_proxmox_sim::Tamper {
            vmid: 205,
            key: key.into(),
            value: value.into(),
        }],
        ..Faults::default()
    };
    // Someone else sets an unrelated key: the digest no longer matches, the VM is re-read,
    // and the memory change goes through without touching their edit.
    sim.set_faults(tamper("agent", "1"));
    update_memory(&p, &vm, 10).await.unwrap();
    let w = sim.world();
    assert_eq!(w.vms[&205].config["agent"], "1");
    assert_eq!(w.vms[&205].effective()["memory"], "10240");
    assert_eq!(sim.counters().faults["tamper"], 1);
    // Someone else changes the very key we write: refused, their value stays.
    sim.set_faults(tamper("memory", "4096"));
    let err = update_memory(&p, &vm, 12).await.unwrap_err();
    assert!(
        err.message.contains("changed outside cairn") && err.message.contains("memory"),
        "{err}"
    );
    assert_eq!(sim.world().vms[&205].config["memory"], "4096");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_memory_on_two_new_vms_is_refused_by_the_capacity_check_not_wrapped() {
    let sim = sim().await;
    let p = provider(&sim);
    let absurd = |vmid: u32| {
        let mut vm = master(vmid, "10.0.20.110", 1);
        vm.memory = u64::MAX / 2;
        serde_json::to_value(vm).unwrap()
    };
    let (a, b) = (absurd(205), absurd(206));
    let (y, z) = (
        Address::new(Vm::KIND, "k8s-master-2"),
        Address::new(Vm::KIND, "k8s-master-3"),
    );
    let changes = [
        planned(&y, "205", None, Some(&a)),
        planned(&z, "206", None, Some(&b)),
    ];
    // Even a generous ratio cannot let it through.
    let settings = BTreeMap::from([("proxmox.memory_ratio".to_string(), "1000".to_string())]);
    let checks = p.check_plan(&changes, &settings).await.unwrap();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(!checks[0].passed, "{}", checks[0].message);
    assert!(
        checks[0].message.starts_with("node pve: 262 GiB committed + ")
            && checks[0].message.contains(" > 267 GiB physical (ratio 1000.00); adding the most: proxmox_vm.k8s-master-2 (VM 205, +"),
        "{}",
        checks[0].message
    );
    assert_eq!(sim.counters().writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_created_without_a_clone_carries_the_whole_marker_from_the_create_call() {
    let sim = sim().await;
    let client = PveClient::new(client_config(&sim)).unwrap();
    let mut vm = master(230, "10.0.20.130", 2);
    vm.clone = None;
    // Only the create call: an apply killed right after it must leave a VM known as ours.
    cairn_proxmox::kinds::vm::converge::create_empty(&client, &vm, &marker())
        .await
        .unwrap();
    let cfg = &sim.world().vms[&230].config;
    assert!(cfg["tags"].contains("cairn.homelab-ha"), "{cfg:?}");
    assert!(cfg["description"].contains("cairn-managed"), "{cfg:?}");
    let seen = observe(&provider(&sim), &["230"]).await.remove(0);
    assert_eq!(seen.marker, Some(marker()));
}
