//! The `cairn` facade: a stack written only against the facade's re-exports plans and
//! applies end to end.

use std::sync::Arc;

use cairn::core::testing::{MemoryProvider, Thing};
use cairn::{ApplyOptions, Providers, StackBuilder, apply, plan};

#[tokio::test]
async fn a_stack_written_against_the_facade_converges() {
    let memory = Arc::new(MemoryProvider::new());
    let providers = Providers::new().with(memory.clone());
    let mut b = StackBuilder::new("facade");
    let db = b.add(
        "db",
        Thing {
            name: "db".into(),
            size: 1,
            ..Default::default()
        },
    );
    b.add(
        "app",
        Thing {
            name: "app".into(),
            inputs: vec![db.id().into()],
            ..Default::default()
        },
    );
    let stack = b.build().unwrap();

    let planned = plan(&stack, &providers).await.unwrap();
    assert_eq!(
        planned.plan.summary_line(),
        "Plan: 2 to add, 0 to change, 0 to destroy."
    );
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn::apply::NoProgress),
    )
    .await;
    assert!(report.success());
    assert!(!plan(&stack, &providers).await.unwrap().plan.has_changes());
}
