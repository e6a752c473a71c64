//! `hetzner_volume` through the engine against the simulator: created attached to a server
//! by reference, resized in place, moved to another server, refused when it would shrink,
//! and deleted (detached first) once the stack stops declaring it; every apply is followed by
//! an empty plan.

mod common;

use std::sync::Arc;

use cairn_core::{Action, ApplyOptions, PlanError, Providers, Stack, StackBuilder, apply, plan};
use cairn_hetzner::*;
use common::*;
use serde_json::Value;

/// Servers `db-1` and `db-2`, and (with `volume`) the volume `data` of `size` GB attached to
/// the server named `on`.
fn stack(volume: Option<(u32, &str)>) -> Stack {
    let mut s = StackBuilder::new("vol");
    let mut handles = Vec::new();
    for n in ["db-1", "db-2"] {
        handles.push((n, s.add(n, Server::new(n, "cax11", "ubuntu-24.04", "fsn1"))));
    }
    if let Some((size, on)) = volume {
        let server = handles.iter().find(|(n, _)| *n == on).unwrap();
        let mut v = Volume::new("data", size, "fsn1");
        v.location = None;
        v.server = Some(server.1.id().into());
        v.format = Some(VolumeFormat::Ext4);
        v.automount = Some(false);
        v.labels.insert("role".into(), "db".into());
        s.add("data", v);
    }
    s.build().expect("stack builds")
}

async fn apply_ok(stack: &Stack, providers: &Providers) -> cairn_core::Planned {
    let planned = plan(stack, providers).await.expect("plan");
    let report = apply(
        stack,
        providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    let again = plan(stack, providers).await.expect("second plan");
    assert!(
        !again.plan.has_changes(),
        "second plan not empty: {:#?}",
        again.plan.resource_changes
    );
    planned
}

fn volume(sim: &cairn_hetzner_sim::SimHandle) -> Option<Value> {
    sim.dump_state()["objects"]["volumes"]
        .as_object()
        .and_then(|m| m.values().next().cloned())
}

fn server_id(sim: &cairn_hetzner_sim::SimHandle, name: &str) -> u64 {
    sim.with_world(|w| {
        w.coll("servers")
            .iter()
            .find(|(_, s)| s["name"] == name)
            .map(|(i, _)| *i)
            .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_is_created_on_a_referenced_server_resized_moved_and_deleted() {
    let sim = sim().await;
    let providers = providers(provider(&sim));

    // Create, attached by reference to a server created in the same apply.
    let first = apply_ok(&stack(Some((10, "db-1"))), &providers).await;
    let data = first.plan.change("hetzner_volume.data").unwrap();
    assert_eq!(data.action(), Action::Create);
    let v = volume(&sim).expect("volume exists");
    assert_eq!(v["server"], server_id(&sim, "db-1"));
    assert_eq!(v["size"], 10);
    assert_eq!(v["format"], "ext4");
    assert_eq!(v["location"]["name"], "fsn1");

    // Resize in place: one resize action, the same volume.
    sim.reset_counters();
    let grown = apply_ok(&stack(Some((20, "db-1"))), &providers).await;
    let change = grown.plan.change("hetzner_volume.data").unwrap();
    assert_eq!(change.action(), Action::Update);
    let paths: Vec<&str> = change.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["size"]);
    let c = sim.counters();
    assert_eq!(
        c.matching("POST /v1/volumes/{id}/actions/resize"),
        1,
        "{:?}",
        c.requests
    );
    assert_eq!(c.matching("POST /v1/volumes "), 0);
    assert_eq!(c.matching("DELETE"), 0);
    assert_eq!(volume(&sim).unwrap()["id"], v["id"]);
    assert_eq!(volume(&sim).unwrap()["size"], 20);

    // Another server: detach, then attach.
    sim.reset_counters();
    apply_ok(&stack(Some((20, "db-2"))), &providers).await;
    let c = sim.counters();
    assert_eq!(
        c.matching("POST /v1/volumes/{id}/actions/detach"),
        1,
        "{:?}",
        c.requests
    );
    assert_eq!(c.matching("POST /v1/volumes/{id}/actions/attach"), 1);
    assert_eq!(volume(&sim).unwrap()["server"], server_id(&sim, "db-2"));

    // No longer declared at all: detached, then deleted.
    sim.reset_counters();
    let gone = apply_ok(&stack(None), &providers).await;
    let change = gone.plan.change("hetzner_volume.data").unwrap();
    assert_eq!(change.action(), Action::Delete);
    let c = sim.counters();
    assert_eq!(
        c.matching("POST /v1/volumes/{id}/actions/detach"),
        1,
        "{:?}",
        c.requests
    );
    assert_eq!(c.matching("DELETE /v1/volumes/{id}"), 1);
    assert!(volume(&sim).is_none());
    assert_eq!(
        sim.dump_state()["objects"]["servers"]
            .as_object()
            .unwrap()
            .len(),
        2,
        "the servers stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrinking_a_volume_refuses_the_plan_naming_the_field_and_writes_nothing() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    apply_ok(&stack(Some((30, "db-1"))), &providers).await;
    sim.reset_counters();
    let err = plan(&stack(Some((20, "db-1"))), &providers)
        .await
        .expect_err("a shrink is refused");
    let PlanError::ChecksFailed { failed, .. } = &err else {
        panic!("expected a refused plan, got {err}");
    };
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].message.contains("hetzner_volume.data")
            && failed[0].message.contains("size")
            && failed[0].message.contains("only grow"),
        "{}",
        failed[0].message
    );
    assert_eq!(sim.counters().writes, 0);
    assert_eq!(volume(&sim).unwrap()["size"], 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_in_a_location_is_attached_later_by_reference() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let mut s = StackBuilder::new("vol");
    s.add("logs", Volume::new("logs", 10, "fsn1"));
    apply_ok(&s.build().unwrap(), &providers).await;
    assert!(volume(&sim).unwrap()["server"].is_null());

    let mut s = StackBuilder::new("vol");
    let srv = s.add("web", Server::new("web", "cax11", "ubuntu-24.04", "fsn1"));
    let mut v = Volume::new("logs", 10, "fsn1");
    v.server = Some(srv.id().into());
    s.add("logs", v);
    apply_ok(&s.build().unwrap(), &providers).await;
    assert_eq!(volume(&sim).unwrap()["server"], server_id(&sim, "web"));
}
