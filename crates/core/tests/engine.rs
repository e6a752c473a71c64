//! End-to-end tests of the engine on the in-memory provider: ordering, concurrency, failure
//! isolation, deletes, validation errors, adoption, drift reasons, saved plans and gates.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::apply::NoProgress;
use cairn_core::gate::{GateTiming, Probe};
use cairn_core::planner::stale_entries;
use cairn_core::render::render_plan;
use cairn_core::testing::{CbdThing, MemoryProvider, Thing};
use cairn_core::{
    ApplyOptions, Marker, Outcome, PlanError, Planned, Providers, Stack, StackBuilder, apply, plan,
};
use proptest::prelude::*;

fn thing(name: &str, size: i64) -> Thing {
    Thing {
        name: name.into(),
        size,
        zone: "a".into(),
        ..Default::default()
    }
}

fn providers(m: &Arc<MemoryProvider>) -> Providers {
    Providers::new().with(m.clone())
}

fn owned(stack: &str) -> Option<Marker> {
    Some(Marker::created(stack, None))
}

async fn plan_apply(
    stack: &Stack,
    p: &Providers,
    parallelism: usize,
) -> (Planned, cairn_core::ApplyReport) {
    let planned = plan(stack, p).await.expect("plan");
    let report = apply(
        stack,
        p,
        &planned,
        ApplyOptions {
            parallelism,
            ..ApplyOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await;
    (planned, report)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A random DAG: node i depends on a subset of the nodes before it.
fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, HashSet<usize>, usize)> {
    (2usize..24).prop_flat_map(|n| {
        let deps = (0..n)
            .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)))
            .collect::<Vec<_>>();
        (deps, proptest::collection::hash_set(0..n, 0..3), 1usize..5)
    })
}

fn descendants(deps: &[Vec<usize>], roots: &HashSet<usize>) -> HashSet<usize> {
    let mut out = HashSet::new();
    let mut changed = true;
    while changed {
        changed = false;
        for (i, ds) in deps.iter().enumerate() {
            if !out.contains(&i) && ds.iter().any(|d| roots.contains(d) || out.contains(d)) {
                out.insert(i);
                changed = true;
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn apply_runs_each_node_once_after_its_dependencies_within_limits((deps, failing, parallelism) in dag()) {
        let m = Arc::new(MemoryProvider::new().with_latency(Duration::from_millis(2)).with_concurrency(3));
        for f in &failing {
            m.fail_on(&format!("n{f}"));
        }
        let mut b = StackBuilder::new("prop");
        let mut handles: Vec<cairn_core::Handle<Thing>> = Vec::new();
        for (i, ds) in deps.iter().enumerate() {
            let mut t = thing(&format!("n{i}"), i as i64);
            t.inputs = ds.iter().map(|&d| handles[d] .id()).map(Into::into).collect();
            let h: cairn_core::Handle<Thing> = b.add(&format!("n{i}"), t);
            handles.push(h);
        }
        let stack = b.build().unwrap();
        let (_, report) = rt().block_on(plan_apply(&stack, &providers(&m), parallelism));

        let calls = m.calls();
        let skipped_expected = descendants(&deps, &failing);
        for (i, deps_i) in deps.iter().enumerate() {
            let key = format!("n{i}");
            let mine: Vec<_> = calls.iter().filter(|c| c.key == key && c.op == "create").collect();
            if skipped_expected.contains(&i) {
                prop_assert!(mine.is_empty(), "{key} ran although a dependency failed");
                let e = report.entries.iter().find(|e| e.address.0 == format!("test_thing.{key}")).unwrap();
                prop_assert!(matches!(e.outcome, Outcome::Skipped(_)));
            } else {
                prop_assert_eq!(mine.len(), 1, "{} must run exactly once", key);
                for &d in deps_i {
                    let dep = calls.iter().find(|c| c.key == format!("n{d}")).unwrap();
                    prop_assert!(dep.end <= mine[0].start, "{} started before its dependency n{}", key, d);
                }
                prop_assert_eq!(m.count("test_thing", &key), usize::from(!failing.contains(&i)));
            }
        }
        prop_assert!(m.max_in_flight() <= parallelism.min(3), "in flight {} > limit", m.max_in_flight());
        let (done, failed, skipped) = report.counts();
        prop_assert_eq!(failed, failing.difference(&skipped_expected).count());
        prop_assert_eq!(skipped, skipped_expected.len());
        prop_assert_eq!(done + failed + skipped, deps.len());
    }

    #[test]
    fn undeclared_owned_objects_are_deleted_users_first((deps, _f, parallelism) in dag()) {
        let m = Arc::new(MemoryProvider::new().with_latency(Duration::from_millis(1)));
        let mut ids: Vec<String> = Vec::new();
        for (i, ds) in deps.iter().enumerate() {
            let mut t = thing(&format!("old{i}"), 0);
            t.inputs = ds.iter().map(|&d| ids[d].clone().into()).collect();
            ids.push(m.seed(&t, owned("prop")));
        }
        let stack = StackBuilder::new("prop").build().unwrap();
        let (planned, report) = rt().block_on(plan_apply(&stack, &providers(&m), parallelism));
        prop_assert_eq!(planned.plan.summary.destroy, deps.len());
        prop_assert!(report.success());
        let calls = m.calls();
        for (i, ds) in deps.iter().enumerate() {
            let user = calls.iter().find(|c| c.key == format!("old{i}") && c.op == "delete").unwrap();
            for d in ds {
                let used = calls.iter().find(|c| c.key == format!("old{d}") && c.op == "delete").unwrap();
                prop_assert!(user.end <= used.start, "old{} was deleted while old{} still used it", d, i);
            }
        }
    }
}

#[tokio::test]
async fn second_plan_after_apply_is_empty_and_references_resolve() {
    let m = Arc::new(MemoryProvider::new());
    let mut b = StackBuilder::new("s");
    let db = b.add("db", thing("db", 1));
    let mut web = thing("web", 1);
    web.inputs = vec![db.id().into(), "literal".into()];
    b.add("web", web);
    let stack = b.build().unwrap();
    let p = providers(&m);
    let (planned, report) = plan_apply(&stack, &p, 10).await;
    assert!(
        render_plan(&planned.plan, false).contains("inputs = [(known after apply), \"literal\"]")
    );
    assert!(report.success(), "{report:?}");
    let db_id = m.value("test_thing", "db").unwrap()["id"].clone();
    assert_eq!(m.value("test_thing", "web").unwrap()["inputs"][0], db_id);
    let again = plan(&stack, &p).await.unwrap();
    assert!(
        !again.plan.has_changes(),
        "{}",
        render_plan(&again.plan, false)
    );
    assert_eq!(
        again.plan.summary_line(),
        "Plan: 0 to add, 0 to change, 0 to destroy."
    );
}

/// A stack of `db` and `web`, where `web` uses `db`'s id; applied with default options.
async fn apply_db_web(m: &Arc<MemoryProvider>) -> cairn_core::ApplyReport {
    let mut b = StackBuilder::new("s");
    let db = b.add("db", thing("db", 1));
    let mut web = thing("web", 1);
    web.inputs = vec![db.id().into()];
    b.add("web", web);
    let stack = b.build().unwrap();
    plan_apply(&stack, &providers(m), 10).await.1
}

fn outcome_of<'a>(report: &'a cairn_core::ApplyReport, address: &str) -> &'a Outcome {
    &report
        .entries
        .iter()
        .find(|e| e.address.to_string() == address)
        .unwrap_or_else(|| panic!("{address} in {report:?}"))
        .outcome
}

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_is_retried_with_backoff_and_the_change_succeeds() {
    let m = Arc::new(MemoryProvider::new());
    m.fail_retryable("web", 2);
    let start = tokio::time::Instant::now();
    let report = apply_db_web(&m).await;
    assert!(report.success(), "{report:?}");
    assert_eq!(m.count("test_thing", "web"), 1);
    assert_eq!(m.writes(), 4, "db once, web twice busy and once for real");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "backed off 1 s, then 2 s: {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_change_that_stays_retryable_fails_after_the_bounded_retries() {
    let m = Arc::new(MemoryProvider::new());
    m.fail_retryable("web", 100);
    let report = apply_db_web(&m).await;
    assert!(
        matches!(outcome_of(&report, "test_thing.web"), Outcome::Failed(e) if e.contains("busy")),
        "{report:?}"
    );
    assert_eq!(m.writes(), 1 + 3, "db once, web once plus two retries");
}

#[tokio::test(start_paused = true)]
async fn a_failure_that_is_not_retryable_is_not_retried() {
    let m = Arc::new(MemoryProvider::new());
    m.fail_on("web");
    let report = apply_db_web(&m).await;
    assert!(
        matches!(outcome_of(&report, "test_thing.web"), Outcome::Failed(_)),
        "{report:?}"
    );
    assert_eq!(m.writes(), 2, "db once, web once");
}

fn assert_untouched(m: &MemoryProvider) {
    assert_eq!(m.writes(), 0, "the provider was written to");
}

#[test]
fn duplicate_address_and_key_name_both_resources() {
    let mut b = StackBuilder::new("s");
    b.add("a", thing("x", 1));
    b.add("a", thing("y", 1));
    b.add("b", thing("x", 1));
    let err = b.build().err().unwrap().to_string();
    assert!(err.contains("duplicate address test_thing.a"), "{err}");
    assert!(
        err.contains("test_thing.a and test_thing.b have the same test_thing key \"x\""),
        "{err}"
    );
}

#[test]
fn dangling_reference_names_referrer_field_and_target() {
    let mut other = StackBuilder::new("other");
    let foreign = other.add("ghost", thing("ghost", 1));
    let mut b = StackBuilder::new("s");
    let mut t = thing("a", 1);
    t.inputs = vec![foreign.id().into()];
    b.add("a", t);
    let err = b.build().err().unwrap().to_string();
    assert_eq!(
        err,
        "test_thing.a refers to test_thing.ghost (inputs[0]), which is not declared in this stack"
    );
}

#[test]
fn cycle_is_reported_with_its_path() {
    let mut b = StackBuilder::new("s");
    let a = b.add("a", thing("a", 1));
    let bb = b.add("b", thing("b", 1));
    let c = b.add("c", thing("c", 1));
    b.depends_on(&a, &c).depends_on(&c, &bb).depends_on(&bb, &a);
    let err = b.build().err().unwrap().to_string();
    assert_eq!(
        err,
        "dependency cycle: test_thing.a -> test_thing.c -> test_thing.b -> test_thing.a"
    );
}

#[tokio::test]
async fn invalid_field_names_resource_and_field_and_touches_nothing() {
    let m = Arc::new(MemoryProvider::new());
    let mut b = StackBuilder::new("s");
    b.add("bad", thing("bad", -3));
    let err = plan(&b.build().unwrap(), &providers(&m))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, PlanError::Invalid(_)));
    assert!(
        err.to_string()
            .contains("test_thing.bad: size: must be ≥ 0, got -3"),
        "{err}"
    );
    assert_untouched(&m);
}

#[tokio::test]
async fn replacing_a_protected_resource_is_refused_before_anything_runs() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("master", 1), owned("s"));
    let mut b = StackBuilder::new("s");
    let mut t = thing("master", 1);
    t.zone = "b".into();
    let h = b.add("master", t);
    b.protect(&h);
    let err = plan(&b.build().unwrap(), &providers(&m))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, PlanError::Protected(_)));
    assert!(
        err.to_string()
            .contains("test_thing.master (forces replacement)"),
        "{err}"
    );
    assert_untouched(&m);
}

/// A [`Thing`] whose `size` only takes effect on a restart (like a server type or VM memory).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct RestartThing(Thing);

impl cairn_core::Resource for RestartThing {
    const KIND: &'static str = "test_restart_thing";
    const PROVIDER: &'static str = "memory";
    fn key(&self) -> String {
        self.0.name.clone()
    }
    fn schema() -> cairn_core::Schema {
        cairn_core::Schema {
            restart: &["size"],
            ..<Thing as cairn_core::Resource>::schema()
        }
    }
}

#[tokio::test]
async fn restarting_a_protected_resource_needs_an_acknowledgement() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&RestartThing(thing("master", 1)), owned("s"));
    let stack = |ack: bool| {
        let mut b = StackBuilder::new("s");
        let h = b.add("master", RestartThing(thing("master", 2)));
        b.protect(&h);
        if ack {
            b.acknowledge_restart(&h);
        }
        b.build().unwrap()
    };
    let err = plan(&stack(false), &providers(&m)).await.err().unwrap();
    assert!(matches!(err, PlanError::Protected(_)));
    assert!(
        err.to_string()
            .contains("test_restart_thing.master (size restarts it; acknowledge_restart to allow)"),
        "{err}"
    );
    assert_untouched(&m);

    let planned = plan(&stack(true), &providers(&m)).await.unwrap();
    let c = planned.plan.change("test_restart_thing.master").unwrap();
    assert_eq!(c.actions, ["update"]);
    assert!(
        c.action_reason
            .as_deref()
            .is_some_and(|r| r.contains("size restarts this protected resource (acknowledged)")),
        "{:?}",
        c.action_reason
    );
}

#[tokio::test]
async fn stale_saved_plan_is_refused_naming_what_changed() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("db", 1), owned("s"));
    let mut b = StackBuilder::new("s");
    b.add("db", thing("db", 2));
    let stack = b.build().unwrap();
    let p = providers(&m);
    let saved = plan(&stack, &p).await.unwrap().plan;
    let json = serde_json::to_string(&saved).unwrap();
    m.tamper("test_thing", "db", "size", 5.into());
    let reloaded: cairn_core::Plan = serde_json::from_str(&json).unwrap();
    let fresh = plan(&stack, &p).await.unwrap().plan;
    let stale = stale_entries(&reloaded, &fresh);
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].0.0, "test_thing.db");
    assert_eq!(stale[0].1, "its live state changed");
    assert!(stale_entries(&reloaded, &reloaded).is_empty());
    assert_untouched(&m);
}

#[tokio::test]
async fn adoption_adds_only_the_marker_and_then_converges() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("handmade", 1), None);
    let mut b = StackBuilder::new("s");
    b.add("handmade", thing("handmade", 1));
    let stack = b.build().unwrap();
    let p = providers(&m);
    let (planned, report) = plan_apply(&stack, &p, 10).await;
    let c = planned.plan.change("test_thing.handmade").unwrap();
    assert_eq!(c.actions, ["update"]);
    assert_eq!(c.changes.len(), 1);
    assert_eq!(c.changes[0].path, "(ownership marker)");
    assert!(report.success());
    assert_eq!(m.count("test_thing", "handmade"), 1);
    assert!(!plan(&stack, &p).await.unwrap().plan.has_changes());
}

#[tokio::test]
async fn drift_reason_tells_outside_change_from_code_change() {
    let m = Arc::new(MemoryProvider::new());
    let mut b = StackBuilder::new("s");
    b.add("db", thing("db", 1));
    let stack = b.build().unwrap();
    let p = providers(&m);
    plan_apply(&stack, &p, 10).await;
    m.tamper("test_thing", "db", "size", 9.into());
    let drift = plan(&stack, &p).await.unwrap().plan;
    let c = drift.change("test_thing.db").unwrap();
    assert_eq!(
        c.action_reason.as_deref(),
        Some("changed outside cairn since the last apply")
    );
    assert_eq!(c.changes[0].path, "size");

    let mut b = StackBuilder::new("s");
    b.add("db", thing("db", 2));
    let code = plan(&b.build().unwrap(), &p).await.unwrap().plan;
    let c = code.change("test_thing.db").unwrap();
    assert_eq!(
        c.action_reason.as_deref(),
        Some("the stack's code changed since the last apply")
    );
}

#[tokio::test]
async fn ignore_changes_and_sensitive_fields_are_honoured() {
    let m = Arc::new(MemoryProvider::new());
    let mut seeded = thing("db", 1);
    seeded.secret = Some("old-s3cret".into());
    m.seed(&seeded, owned("s"));
    let mut b = StackBuilder::new("s");
    let mut t = thing("db", 7);
    t.secret = Some("hunter2-new".into());
    let h = b.add("db", t);
    b.ignore_changes(&h, &["size"]);
    let planned = plan(&b.build().unwrap(), &providers(&m)).await.unwrap();
    let c = planned.plan.change("test_thing.db").unwrap();
    assert_eq!(
        c.changes
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["secret"]
    );
    let text = render_plan(&planned.plan, false);
    let json = planned.to_json().to_string();
    assert!(json.contains("(sensitive)"));
    for out in [&text, &json, &format!("{:?}", planned.plan)] {
        assert!(
            !out.contains("hunter2") && !out.contains("s3cret"),
            "secret leaked: {out}"
        );
    }
    assert!(
        text.contains("secret: \"(sensitive)\" → \"(sensitive)\""),
        "{text}"
    );
}

#[tokio::test]
async fn an_undeclared_owned_object_is_redacted_by_its_kind() {
    let m = Arc::new(MemoryProvider::new());
    let mut seeded = thing("vip", 1);
    seeded.secret = Some("carp-pass-1".into());
    m.seed(&seeded, owned("s"));
    // The stack no longer declares any thing: the owned one is planned for deletion.
    let planned = plan(&StackBuilder::new("s").build().unwrap(), &providers(&m))
        .await
        .unwrap();
    let c = planned.plan.change("test_thing.vip").unwrap();
    assert_eq!(c.actions, ["delete"]);
    let json = planned.to_json().to_string();
    let text = render_plan(&planned.plan, false);
    assert!(json.contains("(sensitive)"), "{json}");
    for out in [&json, &text] {
        assert!(!out.contains("carp-pass-1"), "secret leaked: {out}");
    }
}

#[tokio::test]
async fn no_digest_depends_on_a_secret() {
    let m = Arc::new(MemoryProvider::new());
    let digests = |secret: &'static str| {
        let m = m.clone();
        async move {
            let mut b = StackBuilder::new("s");
            let mut t = thing("db", 1);
            t.secret = Some(secret.into());
            b.add("db", t);
            let stack = b.build().unwrap();
            let (planned, report) = plan_apply(&stack, &providers(&m), 4).await;
            assert!(report.success());
            let fingerprint = plan(&stack, &providers(&m))
                .await
                .unwrap()
                .work
                .iter()
                .find_map(|w| w.observed.as_ref()?.marker.clone()?.fingerprint)
                .expect("a fingerprint on the applied object");
            let c = planned.plan.change("test_thing.db").unwrap().clone();
            // What was observed (the secret included) is digested into plan files too.
            let observed = plan(&stack, &providers(&m)).await.unwrap();
            let o = observed.plan.change("test_thing.db").unwrap();
            // And so is the plan digest the backend records on locks and runs.
            let recorded = cairn_core::backend::plan_digest(&observed);
            (
                c.desired_digest,
                fingerprint,
                o.observed_digest.clone(),
                recorded,
            )
        }
    };
    let a = digests("hunter2").await;
    let b = digests("correct-horse").await;
    assert_eq!(a, b, "digests must not change with (or reveal) the secret");
}

#[tokio::test]
async fn an_adopted_object_whose_declaration_disappears_is_released_not_deleted() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("zone", 1), Some(Marker::adopted("s", None)));
    let empty = StackBuilder::new("s").build().unwrap();
    let (planned, report) = plan_apply(&empty, &providers(&m), 4).await;
    let c = planned.plan.change("test_thing.zone").unwrap();
    assert_eq!(c.actions, ["release"]);
    assert!(
        c.action_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("adopted by this stack and no longer declared")),
        "{:?}",
        c.action_reason
    );
    let text = render_plan(&planned.plan, false);
    assert!(
        text.contains("release: marker removed, object kept"),
        "{text}"
    );
    assert!(
        text.ends_with("Plan: 0 to add, 0 to change, 0 to destroy, 1 to release.\n"),
        "{text}"
    );
    assert!(report.success(), "{report:?}");
    assert_eq!(m.count("test_thing", "zone"), 1, "the object is kept");
    assert_eq!(
        m.marker("test_thing", "zone"),
        None,
        "only the marker is gone"
    );
    let again = plan(&empty, &providers(&m)).await.unwrap();
    assert!(
        !again.plan.has_changes(),
        "a released object is not ours any more"
    );
}

#[tokio::test]
async fn a_stack_may_ask_for_adopted_objects_to_be_deleted() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("zone", 1), Some(Marker::adopted("s", None)));
    let mut b = StackBuilder::new("s");
    b.delete_adopted_when_undeclared();
    let (planned, report) = plan_apply(&b.build().unwrap(), &providers(&m), 4).await;
    let c = planned.plan.change("test_thing.zone").unwrap();
    assert_eq!(c.actions, ["delete"]);
    assert!(
        c.action_reason
            .as_deref()
            .unwrap()
            .contains("delete_adopted_when_undeclared")
    );
    assert!(report.success());
    assert_eq!(m.count("test_thing", "zone"), 0);
}

#[tokio::test]
async fn objects_created_by_cairn_are_marked_created_and_adoptions_adopted() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("old", 1), None);
    let mut b = StackBuilder::new("s");
    b.add("old", thing("old", 1));
    b.add("new", thing("new", 1));
    let (_, report) = plan_apply(&b.build().unwrap(), &providers(&m), 4).await;
    assert!(report.success());
    let origin = |k: &str| m.marker("test_thing", k).map(|m| m.origin);
    assert_eq!(origin("old"), Some(cairn_core::Origin::Adopted));
    assert_eq!(origin("new"), Some(cairn_core::Origin::Created));
}

#[tokio::test]
async fn a_copied_marker_owns_nothing_and_the_plan_warns() {
    let m = Arc::new(MemoryProvider::new());
    let mut copied = Marker::created("s", None);
    copied.copied_from = Some("test_thing.vm (id 1)".into());
    m.seed(&thing("vm-clone", 1), Some(copied));
    let (planned, report) =
        plan_apply(&StackBuilder::new("s").build().unwrap(), &providers(&m), 4).await;
    assert!(
        !planned.plan.has_changes(),
        "a clone of an owned object is never deleted"
    );
    assert_eq!(
        planned.plan.warnings,
        [
            "test_thing.vm-clone carries stack \"s\"'s marker copied from test_thing.vm (id 1): it is not owned by this stack and is left alone"
        ]
    );
    assert!(render_plan(&planned.plan, false).contains("Warnings:"));
    assert!(report.success());
    assert_eq!(m.writes(), 0);
}

#[tokio::test]
async fn pending_changes_of_a_managed_kind_are_a_planned_change_that_apply_applies() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("a", 1), owned("s"));
    m.set_pending("haproxy", &["test_thing"]);
    let mut b = StackBuilder::new("s");
    b.add("a", thing("a", 1));
    let stack = b.build().unwrap();
    let (planned, report) = plan_apply(&stack, &providers(&m), 4).await;
    let c = planned
        .plan
        .change("memory_pending.haproxy")
        .expect("a plan entry for the pending changes");
    assert_eq!(c.actions, ["update"]);
    assert!(
        c.action_reason
            .as_deref()
            .unwrap()
            .starts_with("haproxy has changes written but not applied"),
        "{:?}",
        c.action_reason
    );
    assert_eq!(c.steps, ["apply haproxy"]);
    assert!(planned.plan.has_changes(), "drift must not say in sync");
    assert_eq!(
        planned.plan.summary_line(),
        "Plan: 0 to add, 1 to change, 0 to destroy."
    );
    let text = render_plan(&planned.plan, false);
    assert!(text.contains("memory_pending.haproxy"), "{text}");
    assert!(report.success(), "{report:?}");
    assert_eq!(m.applied_pending(), ["haproxy"]);
    assert_eq!(m.writes(), 0, "only the pending changes were applied");
    let again = plan(&stack, &providers(&m)).await.unwrap();
    assert!(!again.plan.has_changes());
}

#[tokio::test]
async fn pending_changes_where_the_stack_declares_nothing_are_a_warning_and_never_applied() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("a", 1), owned("s"));
    m.set_pending("firewall", &["test_firewall_alias"]);
    let mut b = StackBuilder::new("s");
    b.add("a", thing("a", 1));
    let (planned, report) = plan_apply(&b.build().unwrap(), &providers(&m), 4).await;
    assert!(
        !planned.plan.has_changes(),
        "{:?}",
        planned.plan.resource_changes
    );
    assert_eq!(
        planned.plan.warnings.len(),
        1,
        "{:?}",
        planned.plan.warnings
    );
    let w = &planned.plan.warnings[0];
    assert!(
        w.starts_with("firewall has changes written but not applied: this stack declares none of test_firewall_alias there")
            && w.contains("leaves them unapplied"),
        "{w}"
    );
    assert!(report.success());
    assert!(
        m.applied_pending().is_empty(),
        "applied without being in the plan"
    );
}

#[tokio::test]
async fn multi_line_strings_are_diffed_line_by_line() {
    let m = Arc::new(MemoryProvider::new());
    let mut seeded = thing("vm", 1);
    seeded.script = Some("#cloud-config\npackages:\n  - curl\n".into());
    m.seed(&seeded, owned("s"));
    let mut b = StackBuilder::new("s");
    let mut t = thing("vm", 1);
    t.script = Some("#cloud-config\npackages:\n  - curl\n  - jq\n".into());
    b.add("vm", t);
    let planned = plan(&b.build().unwrap(), &providers(&m)).await.unwrap();
    let text = render_plan(&planned.plan, false);
    assert!(text.contains("~ script:"), "{text}");
    assert!(text.contains("+   - jq"), "{text}");
    assert!(text.contains("      - curl"), "{text}");
}

#[tokio::test]
async fn create_before_destroy_deletes_the_old_object_after_dependents_ran() {
    let m = Arc::new(MemoryProvider::new());
    let old = CbdThing(thing("cert", 1));
    let old_id = m.seed(&old, owned("s"));
    let mut user = thing("user", 1);
    user.inputs = vec![old_id.into()];
    m.seed(&user, owned("s"));
    let mut b = StackBuilder::new("s");
    let mut new = CbdThing(thing("cert", 1));
    new.0.zone = "b".into();
    let cert = b.add("cert", new);
    let mut user = thing("user", 1);
    user.inputs = vec![cert.id().into()];
    b.add("user", user);
    let stack = b.build().unwrap();
    let (planned, report) = plan_apply(&stack, &providers(&m), 10).await;
    assert_eq!(
        planned.plan.change("test_cbd_thing.cert").unwrap().actions,
        ["create", "delete"]
    );
    assert!(report.success(), "{report:?}");
    let calls = m.calls();
    let order: Vec<_> = calls
        .iter()
        .map(|c| format!("{} {}", c.op, c.key))
        .collect();
    assert_eq!(order, ["create cert", "update user", "delete cert"]);
    assert_eq!(m.count("test_cbd_thing", "cert"), 1);
    assert_eq!(m.value("test_cbd_thing", "cert").unwrap()["zone"], "b");
}

#[tokio::test]
async fn owned_object_of_another_stack_is_not_adopted() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("db", 1), owned("other"));
    let mut b = StackBuilder::new("s");
    b.add("db", thing("db", 1));
    let err = plan(&b.build().unwrap(), &providers(&m))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("test_thing.db: key: \"db\" is owned by stack \"other\""),
        "{err}"
    );
}

struct Flaky(Arc<std::sync::atomic::AtomicUsize>, usize);

#[async_trait]
impl Probe for Flaky {
    fn describe(&self) -> String {
        "flaky service ready".into()
    }
    async fn check(&self) -> Result<(), String> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n >= self.1 {
            Ok(())
        } else {
            Err(format!("attempt {n}: not ready"))
        }
    }
}

fn gated_stack(ready_after: usize, tries: &Arc<std::sync::atomic::AtomicUsize>) -> Stack {
    let mut b = StackBuilder::new("s");
    let vip = b.add("vip", thing("vip", 1));
    let gate = b.gate(
        "vip-ready",
        Flaky(tries.clone(), ready_after),
        GateTiming {
            interval: Duration::from_millis(5),
            timeout: Duration::from_millis(200),
        },
    );
    b.depends_on(&gate, &vip);
    let dns = b.add("dns", thing("dns", 1));
    b.depends_on(&dns, &gate);
    b.add("independent", thing("independent", 1));
    b.build().unwrap()
}

#[tokio::test]
async fn gate_waits_until_ready_then_dependents_run() {
    let m = Arc::new(MemoryProvider::new());
    let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stack = gated_stack(3, &tries);
    let (planned, report) = plan_apply(&stack, &providers(&m), 10).await;
    assert!(planned.plan.gates[0].will_run);
    assert!(render_plan(&planned.plan, false).contains("gate.vip-ready: flaky service ready"));
    assert!(report.success(), "{report:?}");
    assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 4);
    // Nothing after the gate changes any more: the gate does not run again.
    let again = plan(&stack, &providers(&m)).await.unwrap();
    assert!(!again.plan.gates[0].will_run);
}

#[tokio::test]
async fn a_gate_nothing_waits_for_verifies_the_changes_before_it_and_only_then() {
    let m = Arc::new(MemoryProvider::new());
    let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut b = StackBuilder::new("s");
    let vip = b.add("vip", thing("vip", 1));
    let verify = b.gate(
        "verify-vip",
        Flaky(tries.clone(), 1),
        GateTiming {
            interval: Duration::from_millis(5),
            timeout: Duration::from_millis(200),
        },
    );
    b.depends_on(&verify, &vip);
    let stack = b.build().unwrap();
    let (planned, report) = plan_apply(&stack, &providers(&m), 10).await;
    assert!(planned.plan.gates[0].will_run);
    assert!(report.success(), "{report:?}");
    assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Nothing before it changes any more: the verification does not run again.
    let again = plan(&stack, &providers(&m)).await.unwrap();
    assert!(!again.plan.gates[0].will_run);
}

#[tokio::test]
async fn failed_gate_skips_its_dependents_only() {
    let m = Arc::new(MemoryProvider::new());
    let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stack = gated_stack(usize::MAX, &tries);
    let (_, report) = plan_apply(&stack, &providers(&m), 10).await;
    let outcome = |a: &str| {
        report
            .entries
            .iter()
            .find(|e| e.address.0 == a)
            .map(|e| e.outcome.clone())
    };
    assert!(
        matches!(outcome("gate.vip-ready"), Some(Outcome::Failed(r)) if r.contains("timed out") && r.contains("not ready"))
    );
    assert_eq!(
        outcome("test_thing.dns"),
        Some(Outcome::Skipped("gate.vip-ready failed".into()))
    );
    assert_eq!(outcome("test_thing.independent"), Some(Outcome::Done));
    assert_eq!(m.count("test_thing", "dns"), 0);
}

/// The first attempt hangs forever (a peer that accepts and never answers); later ones pass.
struct HangsOnce(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait]
impl Probe for HangsOnce {
    fn describe(&self) -> String {
        "service behind a half-open connection".into()
    }
    async fn check(&self) -> Result<(), String> {
        if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_hung_probe_attempt_times_out_alone_and_the_gate_still_passes() {
    let m = Arc::new(MemoryProvider::new());
    let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut b = StackBuilder::new("s");
    let vip = b.add("vip", thing("vip", 1));
    let gate = b.gate(
        "vip-ready",
        HangsOnce(tries.clone()),
        GateTiming {
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(20),
        },
    );
    b.depends_on(&gate, &vip);
    let dns = b.add("dns", thing("dns", 1));
    b.depends_on(&dns, &gate);
    let started = std::time::Instant::now();
    let (_, report) = plan_apply(&b.build().unwrap(), &providers(&m), 10).await;
    assert!(report.success(), "{report:?}");
    assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hung attempt must not use up the gate's whole timeout"
    );
}

#[tokio::test]
async fn a_change_that_never_finishes_fails_at_the_stack_timeout_and_skips_its_dependents() {
    let m = Arc::new(MemoryProvider::new().with_latency(Duration::from_secs(3600)));
    let mut b = StackBuilder::new("s");
    let db = b.add("db", thing("db", 1));
    let web = b.add("web", thing("web", 1));
    b.depends_on(&web, &db);
    b.change_timeout(Duration::from_millis(200));
    let stack = b.build().unwrap();
    let started = std::time::Instant::now();
    let (_, report) = plan_apply(&stack, &providers(&m), 10).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "apply must end"
    );
    let outcome = |a: &str| {
        report
            .entries
            .iter()
            .find(|e| e.address.0 == a)
            .map(|e| e.outcome.clone())
    };
    assert!(
        matches!(outcome("test_thing.db"), Some(Outcome::Failed(r)) if r.contains("did not finish within 200ms")),
        "{report:?}"
    );
    assert_eq!(
        outcome("test_thing.web"),
        Some(Outcome::Skipped("test_thing.db failed".into()))
    );
}

#[tokio::test]
async fn plan_json_carries_the_documented_fields() {
    let m = Arc::new(MemoryProvider::new());
    let mut b = StackBuilder::new("s");
    let db = b.add("db", thing("db", 1));
    let mut web = thing("web", 1);
    web.inputs = vec![db.id().into()];
    b.add("web", web);
    let planned = plan(&b.build().unwrap(), &providers(&m)).await.unwrap();
    let v = planned.to_json();
    assert_eq!(v["format_version"], "1.2");
    let web = &v["resource_changes"][1];
    for field in [
        "address",
        "kind",
        "actions",
        "before",
        "after",
        "after_unknown",
        "replace_paths",
        "action_reason",
    ] {
        assert!(web.get(field).is_some(), "missing {field}");
    }
    assert_eq!(web["after_unknown"], serde_json::json!({"inputs": [true]}));
    assert_eq!(v["errored"], false);
    let _ = BTreeMap::<String, String>::new();
}
