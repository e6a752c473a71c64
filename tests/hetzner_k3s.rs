//! hetzner-k3s end to end against the Hetzner simulator seeded with the hand-made cluster:
//! adoption plans no replace, only the missing record and the two new servers (with the
//! firewall following them), then the world converges.

use std::sync::Arc;

use cairn::{Action, ApplyOptions, Providers, apply, plan};
use stacks::sims::Hetzner;
use stacks::stacks::hetzner_k3s;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_the_hand_made_cluster_replaces_nothing_and_then_converges() {
    let sim = Hetzner::start().await.unwrap();
    let provider = hetzner_k3s::provider_for(&sim.handle.endpoint, &sim.handle.token).unwrap();
    let providers = Providers::new().with(Arc::new(provider));
    let stack = hetzner_k3s::build(true).unwrap();

    let planned = plan(&stack, &providers).await.unwrap();
    let mut creates = Vec::new();
    for c in &planned.plan.resource_changes {
        match c.action() {
            Action::Update if c.address.0 == "hetzner_firewall.coolify-fw" => {}
            Action::Update => assert_eq!(
                c.changes
                    .iter()
                    .map(|f| f.path.as_str())
                    .collect::<Vec<_>>(),
                ["(ownership marker)"],
                "{} would change more than its marker",
                c.address
            ),
            Action::Create => creates.push(c.address.0.clone()),
            other => panic!("{} plans {other:?}", c.address),
        }
    }
    creates.sort();
    assert_eq!(
        creates,
        [
            "hetzner_rrset.staging-a",
            "hetzner_server.k3s-cp2",
            "hetzner_server.k3s-cp3"
        ]
    );
    let staging = planned.plan.change("hetzner_rrset.staging-a").unwrap();
    assert_eq!(
        staging.after_unknown,
        serde_json::Value::Bool(false),
        "the LB's address is known: it exists"
    );

    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn::apply::NoProgress),
    )
    .await;
    assert!(
        report.success(),
        "{}",
        cairn::render::render_report(&report, false)
    );
    let again = plan(&stack, &providers).await.unwrap();
    assert!(
        !again.plan.has_changes(),
        "{}",
        cairn::render::render_plan(&again.plan, false)
    );
}
