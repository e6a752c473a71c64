//! End to end through the engine (`cairn_core::plan` / `apply`) against the simulator: the
//! homelab masters cloned from a template found by name, an empty second plan, and the
//! over-committed plan refused before anything is written.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::apply::NoProgress;
use cairn_core::tls::TlsTrust;
use cairn_core::{ApplyOptions, PlanError, Providers, StackBuilder, apply, plan};
use cairn_proxmox::{
    Auth, ClientConfig, DiskSlot, IpConfig, ProxmoxProvider, PveClient, Template, TemplateRefs, Vm,
};
use cairn_proxmox_sim::{ProxmoxSim, SimConfig, SimHandle};

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
    cfg
}

fn providers(sim: &SimHandle) -> Providers {
    Providers::new().with(Arc::new(ProxmoxProvider::new(
        PveClient::new(client_config(sim)).unwrap(),
    )))
}

/// The homelab-ha masters: 200 adopted as is, 205/206 cloned from the template by reference.
/// Applies a plan made for `stack` with the default options.
async fn run(
    stack: &cairn_core::Stack,
    providers: &Providers,
    planned: &cairn_core::Planned,
) -> cairn_core::ApplyReport {
    apply(
        stack,
        providers,
        planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await
}

fn stack(memory_gib: u64) -> cairn_core::Stack {
    let mut b = StackBuilder::new("homelab-ha");
    let template = b.add("ubuntu", Template::named("ubuntu-2404-cloudinit"));
    for (name, vmid, ip) in [
        ("k8s-master-2", 205, "10.0.20.110"),
        ("k8s-master-3", 206, "10.0.20.111"),
    ] {
        let mut vm = Vm::cloned(vmid, name, "pve", template.template_vmid());
        vm.cores = 8;
        vm.memory = memory_gib * 1024;
        vm.disks.insert(DiskSlot::scsi(0), "64G".into());
        let nic = vm.networks.get_mut("net0").unwrap();
        nic.bridge = "vmbr1".into();
        nic.tag = Some(20);
        vm.cloud_init.ciuser = Some("ubuntu".into());
        vm.cloud_init.sshkeys = vec!["ssh-ed25519 AAAAC3Nza+k/y= ops@homelab".into()];
        vm.cloud_init.ipconfig.insert(
            "ipconfig0".into(),
            IpConfig {
                ip: format!("{ip}/24"),
                gw: Some("10.0.20.1".into()),
            },
        );
        vm.tags = vec!["k8s".into(), "master".into()];
        b.add(name, vm);
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_clones_two_masters_and_the_second_plan_is_empty() {
    let sim = sim().await;
    let providers = providers(&sim);
    let stack = stack(2);
    let planned = plan(&stack, &providers).await.unwrap();
    assert_eq!(
        planned.plan.summary_line(),
        "Plan: 2 to add, 0 to change, 0 to destroy."
    );
    assert!(
        planned.plan.checks.iter().all(|c| c.passed),
        "{:?}",
        planned.plan.checks
    );
    let steps = &planned
        .plan
        .change("proxmox_vm.k8s-master-2")
        .unwrap()
        .steps;
    assert!(
        steps.iter().any(|s| s.contains("clone template 9000")),
        "{steps:?}"
    );
    let report = run(&stack, &providers, &planned).await;
    assert!(report.success(), "{report:?}");
    let again = plan(&stack, &providers).await.unwrap();
    assert!(
        !again.plan.has_changes(),
        "{:#?}",
        again.plan.resource_changes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_refuses_three_32_gib_masters_before_any_write() {
    let sim = sim().await;
    let err = plan(&stack(32), &providers(&sim)).await.unwrap_err();
    let PlanError::ChecksFailed { failed, .. } = &err else {
        panic!("expected a refused plan, got {err}");
    };
    // 200 stays at 32 GiB in the 262 committed; the two new masters add 64.
    assert!(
        failed[0].message.starts_with(
            "node pve: 262 GiB committed + 64 GiB planned = 326 GiB > 267 GiB physical (ratio 1.00)"
        ),
        "{}",
        failed[0].message
    );
    assert_eq!(sim.counters().writes, 0, "{:?}", sim.counters());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_after_the_clone_converges_on_the_next_run_without_a_duplicate() {
    let sim = sim().await;
    let providers = providers(&sim);
    // What a killed apply leaves behind: the clone of 205 finished (it carries the stack in
    // its description, written by the clone call itself) but was never configured.
    let trailer = cairn_proxmox::vm::Trailer::new(
        205,
        &cairn_core::Marker::created("homelab-ha", None),
        Some(cairn_proxmox::CloneFrom {
            vmid: Some(9000.into()),
            name: None,
            mode: cairn_proxmox::CloneMode::Linked,
        }),
    );
    let client = PveClient::new(client_config(&sim)).unwrap();
    let upid = client
        .request(
            reqwest::Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[
                ("newid".into(), "205".into()),
                ("name".into(), "k8s-master-2".into()),
                (
                    "description".into(),
                    cairn_proxmox::vm::join_description("", &trailer),
                ),
            ],
        )
        .await
        .unwrap();
    client
        .wait_task("pve", upid.as_str().unwrap())
        .await
        .unwrap();

    let stack = stack(2);
    let planned = plan(&stack, &providers).await.unwrap();
    let c = planned.plan.change("proxmox_vm.k8s-master-2").unwrap();
    assert!(!c.action().is_replace(), "{:?}", c.actions);
    assert_eq!(c.actions, ["update"], "{:#?}", c.changes);
    let report = run(&stack, &providers, &planned).await;
    assert!(report.success(), "{report:?}");
    assert!(!plan(&stack, &providers).await.unwrap().plan.has_changes());
    assert_eq!(
        sim.counters()["POST /nodes/{node}/qemu/{vmid}/clone"],
        2,
        "one clone each for 205 and 206"
    );
    let named = sim
        .world()
        .vms
        .values()
        .filter(|v| v.config["name"].starts_with("k8s-master-"))
        .count();
    assert_eq!(named, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_clone_of_an_owned_vm_is_never_touched() {
    let sim = sim().await;
    let providers = providers(&sim);
    let stack = stack(2);
    let planned = plan(&stack, &providers).await.unwrap();
    let report = run(&stack, &providers, &planned).await;
    assert!(report.success(), "{report:?}");

    // An operator makes a test clone of the owned master 205: PVE copies its description
    // and tags, cairn's marker included.
    let client = PveClient::new(client_config(&sim)).unwrap();
    let upid = client
        .request(
            reqwest::Method::POST,
            "/nodes/pve/qemu/205/clone",
            &[
                ("newid".into(), "207".into()),
                ("name".into(), "test-clone".into()),
                ("full".into(), "1".into()),
            ],
        )
        .await
        .unwrap();
    client
        .wait_task("pve", upid.as_str().unwrap())
        .await
        .unwrap();
    assert!(
        sim.world().vms[&207].config["description"].contains("cairn-managed"),
        "the clone carries the copied marker"
    );

    let warning = "proxmox_vm.207 carries stack \"homelab-ha\"'s marker copied from VM 205: it is not owned by this stack and is left alone";
    // The same stack: nothing to do, and the plan says why the clone is left alone.
    let again = plan(&stack, &providers).await.unwrap();
    assert!(
        !again.plan.has_changes(),
        "{:#?}",
        again.plan.resource_changes
    );
    assert_eq!(again.plan.warnings, [warning]);

    // Even a stack that declares no VM at all deletes only what it created.
    let empty = StackBuilder::new("homelab-ha").build().unwrap();
    let planned = plan(&empty, &providers).await.unwrap();
    assert!(planned.plan.change("proxmox_vm.207").is_none());
    assert_eq!(planned.plan.warnings, [warning]);
    let report = run(&empty, &providers, &planned).await;
    assert!(report.success(), "{report:?}");
    let world = sim.world();
    assert!(world.vms.contains_key(&207), "the clone survives");
    assert!(!world.vms.contains_key(&205) && !world.vms.contains_key(&206));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_every_vm_from_the_stack_plans_the_owned_vms_for_deletion() {
    let sim = sim().await;
    let providers = providers(&sim);
    let stack = stack(2);
    let planned = plan(&stack, &providers).await.unwrap();
    let report = run(&stack, &providers, &planned).await;
    assert!(report.success(), "{report:?}");

    // The same stack, now declaring no proxmox_vm (nor any other Proxmox kind) at all.
    let empty = StackBuilder::new("homelab-ha").build().unwrap();
    let planned = plan(&empty, &providers).await.unwrap();
    for vmid in ["205", "206"] {
        let c = planned
            .plan
            .change(&format!("proxmox_vm.{vmid}"))
            .unwrap_or_else(|| panic!("VM {vmid} is not in the plan: {:#?}", planned.plan));
        assert_eq!(c.actions, ["delete"], "{c:#?}");
        assert_eq!(
            c.steps,
            ["stop the VM", "destroy it (purging its disks)"],
            "{c:#?}"
        );
    }
    // The hand-made master and the template are not ours: they stay out of the plan.
    assert!(planned.plan.change("proxmox_vm.200").is_none());
    assert_eq!(
        planned.plan.summary_line(),
        "Plan: 0 to add, 0 to change, 2 to destroy."
    );
    let report = run(&empty, &providers, &planned).await;
    assert!(report.success(), "{report:?}");
    let w = sim.world();
    assert!(!w.vms.contains_key(&205) && !w.vms.contains_key(&206));
    assert!(w.vms.contains_key(&200) && w.vms.contains_key(&9000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_lookup_is_read_and_never_written() {
    let sim = sim().await;
    let providers = providers(&sim);
    let mut b = StackBuilder::new("homelab-ha");
    b.add("ubuntu", Template::named("ubuntu-2404-cloudinit"));
    let stack = b.build().unwrap();
    let planned = plan(&stack, &providers).await.unwrap();
    let c = planned
        .plan
        .change("proxmox_template.ubuntu")
        .unwrap_or_else(|| panic!("{:#?}", planned.plan));
    assert_eq!(c.actions, ["read"]);
    assert!(!planned.plan.has_changes());
    let report = run(&stack, &providers, &planned).await;
    assert!(report.success(), "{report:?}");
    assert_eq!(sim.counters().writes, 0, "{:?}", sim.counters());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_released_by_hand_after_the_plan_is_not_deleted() {
    let sim = sim().await;
    let providers = providers(&sim);
    let stack = stack(2);
    let planned = plan(&stack, &providers).await.unwrap();
    let report = run(&stack, &providers, &planned).await;
    assert!(report.success(), "{report:?}");
    let empty = StackBuilder::new("homelab-ha").build().unwrap();
    let planned = plan(&empty, &providers).await.unwrap();
    assert_eq!(
        planned.plan.summary_line(),
        "Plan: 0 to add, 0 to change, 2 to destroy."
    );
    // Between plan and apply, someone takes 206 out of cairn's hands: marker tag and
    // description trailer removed.
    let client = PveClient::new(client_config(&sim)).unwrap();
    client
        .request(
            reqwest::Method::PUT,
            "/nodes/pve/qemu/206/config",
            &[
                ("tags".into(), "k8s;master".into()),
                ("description".into(), "kept by hand".into()),
            ],
        )
        .await
        .unwrap();
    let report = run(&empty, &providers, &planned).await;
    let failed: Vec<String> = report
        .entries
        .iter()
        .filter(|e| !matches!(e.outcome, cairn_core::Outcome::Done))
        .map(|e| format!("{} {:?}", e.address, e.outcome))
        .collect();
    assert_eq!(failed.len(), 1, "{report:?}");
    assert!(
        failed[0].starts_with("proxmox_vm.206")
            && failed[0].contains("refusing: the object carried stack"),
        "{failed:?}"
    );
    let w = sim.world();
    assert!(!w.vms.contains_key(&205), "the owned VM is deleted");
    assert!(w.vms.contains_key(&206), "the released VM stays");
}
