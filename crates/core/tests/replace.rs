//! Forced replacement (`plan_with` and `PlanOptions::replace`, what `rotate` asks for): a
//! listed resource is replaced with the reason shown, its dependents follow as updates, an
//! undeclared address is an error and protection still refuses — all on the in-memory
//! provider.

use std::sync::Arc;

use cairn_core::apply::NoProgress;
use cairn_core::render::render_plan;
use cairn_core::testing::{CbdThing, MemoryProvider, Thing};
use cairn_core::{
    Action, Address, ApplyOptions, Marker, PlanError, PlanOptions, Providers, Stack, StackBuilder,
    apply, plan, plan_with,
};

fn thing(name: &str) -> Thing {
    Thing {
        name: name.into(),
        size: 1,
        zone: "a".into(),
        ..Default::default()
    }
}

fn replace(addresses: &[&str]) -> PlanOptions {
    PlanOptions {
        replace: addresses.iter().map(|a| Address(a.to_string())).collect(),
    }
}

/// `db`, `web` using `db`'s id, and `other` using nothing; applied, so a plan is empty.
async fn applied(m: &Arc<MemoryProvider>, protect_db: bool) -> (Stack, Providers) {
    let mut b = StackBuilder::new("s");
    let db = b.add("db", thing("db"));
    if protect_db {
        b.protect(&db);
    }
    let mut web = thing("web");
    web.inputs = vec![db.id().into()];
    b.add("web", web);
    b.add("other", thing("other"));
    b.add("edge", CbdThing(thing("edge")));
    let stack = b.build().unwrap();
    let p = Providers::new().with(m.clone());
    let planned = plan(&stack, &p).await.unwrap();
    let report = apply(
        &stack,
        &p,
        &planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
    assert!(report.success(), "{report:?}");
    assert!(!plan(&stack, &p).await.unwrap().plan.has_changes());
    (stack, p)
}

#[tokio::test]
async fn a_requested_replacement_replaces_the_resource_and_updates_what_references_it() {
    let m = Arc::new(MemoryProvider::new());
    let (stack, p) = applied(&m, false).await;
    let old_id = m.value("test_thing", "db").unwrap()["id"].clone();
    let planned = plan_with(&stack, &p, &replace(&["test_thing.db"]))
        .await
        .unwrap();
    let db = planned.plan.change("test_thing.db").unwrap();
    assert_eq!(db.action(), Action::DeleteCreate);
    assert_eq!(db.action_reason.as_deref(), Some("replacement requested"));
    let web = planned.plan.change("test_thing.web").unwrap();
    assert_eq!(web.action(), Action::Update, "{web:?}");
    assert!(web.changes.iter().any(|c| c.unknown), "{web:?}");
    assert_eq!(
        web.action_reason.as_deref(),
        Some(
            "follows the requested replacement of test_thing.db: the values it uses are known after apply"
        )
    );
    assert_eq!(
        planned.plan.change("test_thing.other").unwrap().action(),
        Action::NoOp
    );
    let text = render_plan(&planned.plan, false);
    assert!(
        text.contains(
            "-/+ test_thing.db  (replace (destroy, then create) — replacement requested)"
        ),
        "{text}"
    );
    let report = apply(
        &stack,
        &p,
        &planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
    assert!(report.success(), "{report:?}");
    let new_id = m.value("test_thing", "db").unwrap()["id"].clone();
    assert_ne!(new_id, old_id, "db was not rebuilt");
    assert_eq!(m.count("test_thing", "db"), 1);
    assert_eq!(m.value("test_thing", "web").unwrap()["inputs"][0], new_id);
    assert!(!plan(&stack, &p).await.unwrap().plan.has_changes());
}

#[tokio::test]
async fn a_create_before_destroy_kind_is_replaced_new_first() {
    let m = Arc::new(MemoryProvider::new());
    let (stack, p) = applied(&m, false).await;
    let planned = plan_with(&stack, &p, &replace(&["test_cbd_thing.edge"]))
        .await
        .unwrap();
    let edge = planned.plan.change("test_cbd_thing.edge").unwrap();
    assert_eq!(edge.action(), Action::CreateDelete);
    assert_eq!(edge.action_reason.as_deref(), Some("replacement requested"));
}

#[tokio::test]
async fn replacing_an_address_the_stack_does_not_declare_is_an_error() {
    let m = Arc::new(MemoryProvider::new());
    let (stack, p) = applied(&m, false).await;
    let writes = m.writes();
    let err = plan_with(&stack, &p, &replace(&["test_thing.nope"]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, PlanError::NotInStack { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot replace test_thing.nope: not declared in stack \"s\""
    );
    assert_eq!(m.writes(), writes);
}

#[tokio::test]
async fn a_protected_resource_is_not_replaced_on_request() {
    let m = Arc::new(MemoryProvider::new());
    let (stack, p) = applied(&m, true).await;
    let writes = m.writes();
    let err = plan_with(&stack, &p, &replace(&["test_thing.db"]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, PlanError::Protected(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("test_thing.db (replacement requested)"),
        "{err}"
    );
    assert_eq!(m.writes(), writes);
}

#[tokio::test]
async fn a_requested_replacement_of_a_missing_resource_creates_it() {
    let m = Arc::new(MemoryProvider::new());
    m.seed(&thing("db"), Some(Marker::created("s", None)));
    let mut b = StackBuilder::new("s");
    b.add("db", thing("db"));
    b.add("new", thing("new"));
    let stack = b.build().unwrap();
    let p = Providers::new().with(m.clone());
    let planned = plan_with(&stack, &p, &replace(&["test_thing.new"]))
        .await
        .unwrap();
    assert_eq!(
        planned.plan.change("test_thing.new").unwrap().action(),
        Action::Create
    );
}
