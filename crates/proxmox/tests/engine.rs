//! End to end through the engine (`cairn_core::plan` / `apply`) against the simulator: the
//! homelab masters cloned from a template found by name, an empty second plan, and the
//! over-committed plan refused before anything is written.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::apply::NoProgress;
use cairn_core::tls::TlsTrust;
use cairn_core::{ApplyOptions, PlanError, Providers, StackBuilder, apply, plan};
use cairn_proxmox::{
    Auth, ClientConfig, IpConfig, ProxmoxProvider, PveClient, Template, TemplateRefs, Vm,
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
        vm.disks.insert("scsi0".into(), "64G".into());
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
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
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
    let trailer = cairn_proxmox::vm::Trailer {
        stack: "homelab-ha".into(),
        fp: None,
        clone: Some(serde_json::json!({"vmid": 9000, "name": null, "full": false})),
    };
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
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
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
