//! Phoenix rotation of hetzner-k3s through the real `rotate` command (run in-process against
//! a world the test keeps), end to end against the Hetzner simulator, real sshd hosts and the
//! cluster simulator (loopback only; needs root): every node replaced exactly once, one at a
//! time, while docfast keeps a ready replica and etcd its quorum (sampled continuously);
//! refusals that touch nothing; a drain blocked by the PodDisruptionBudget that times out
//! leaving the node cordoned; a failed rejoin that stops the rotation before the next node.

#[path = "common/k3s.rs"]
mod k3s;

use std::time::Duration;

use k3s::{
    DOCFAST, NODES, Sampler, World, cordon_order, cordoned_in_order, first_change, id_history,
    new_pods, phase, rotate_runs, run, run_with_env, wait_until,
};

#[test]
fn rotate_all_replaces_every_node_once_while_docfast_and_etcd_quorum_hold() {
    run(async {
        let w = World::bootstrapped().await;
        let ids0 = w.server_ids().await;

        let sampler = Sampler::start(w.sims.clone());
        let code = w.cli(&["rotate", "--all", "--approve"]).await;
        let samples = sampler.finish();
        assert_eq!(code, Ok(0), "rotate --all failed");

        assert!(samples.len() >= 10, "only {} samples", samples.len());
        // Each node's Hetzner server was replaced exactly once: two ids, the first the old.
        let history = id_history(&samples);
        for node in NODES {
            let ids = &history[node];
            assert_eq!(ids.len(), 2, "{node}'s server ids over time: {ids:?}");
            assert_eq!(ids[0], ids0[node], "{node}");
        }
        let ids1 = w.server_ids().await;
        for node in NODES {
            assert_ne!(ids1[node], ids0[node], "{node} was not replaced");
        }
        // One node at a time, servers first, each really cordoned.
        let most = samples.iter().map(|s| s.cordoned.len()).max().unwrap();
        assert!(most <= 1, "two nodes cordoned at once");
        assert!(
            cordoned_in_order(&samples),
            "cordon order {:?}",
            cordon_order(&samples)
        );
        // Replaced one after the other, in the rotation's order.
        let replaced = first_change(&samples, |s, n| s.ids.get(n).copied());
        let at: Vec<usize> = NODES.iter().map(|n| replaced[*n].unwrap()).collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "replacement order: {replaced:?}"
        );
        // The workload and etcd stayed available, and really moved.
        let least = samples.iter().map(|s| s.ready_replicas).min().unwrap();
        assert!(least >= 1, "docfast had {least} ready replicas");
        let moved = new_pods(&samples);
        assert!(moved.len() >= 2, "docfast's pods never moved: {moved:?}");
        assert!(
            samples.iter().all(|s| s.quorum()),
            "etcd lost quorum: {:?}",
            samples.iter().find(|s| !s.quorum())
        );
        assert!(
            samples.iter().any(|s| s.etcd_healthy < 3),
            "no etcd member ever left (were the servers rotated?)"
        );

        let (etcd, nodes, cordoned) =
            w.with_sim(|sim, c| (sim.etcd_health(c), sim.nodes(c), sim.cordoned(c)));
        assert_eq!(etcd, (3, 3));
        assert_eq!(nodes.len(), 5, "{nodes:?}");
        assert!(nodes.iter().all(|n| n.ready), "{nodes:?}");
        assert!(cordoned.is_empty(), "{cordoned:?}");
        let left = w.pending(&w.loaded.stack).await;
        assert!(
            left.is_empty(),
            "after the rotation a plan changes {left:?}"
        );

        // The rotation is in the run history: one run, every node done.
        let runs = rotate_runs().await;
        assert_eq!(runs.len(), 1, "{runs:?}");
        let (r, changes) = &runs[0];
        assert_eq!(r.status, cairn_core::backend::status::SUCCEEDED, "{r:?}");
        for node in NODES {
            for p in ["started", "replaced", "done"] {
                assert!(
                    phase(changes, node, p).is_some(),
                    "{node} has no {p} record: {changes:?}"
                );
            }
        }
    })
}

#[test]
fn a_rotation_is_refused_while_a_node_is_not_ready_naming_it_and_touches_nothing() {
    run(async {
        let w = World::before().await;
        w.with_sim(|sim, _| sim.stop_k3s("k3s-w1"));
        assert!(
            wait_until(&w.sims, Duration::from_secs(60), |sim, c| {
                sim.nodes(c).iter().any(|n| n.name == "k3s-w1" && !n.ready)
            })
            .await,
            "k3s-w1 never became NotReady"
        );
        let ids0 = w.server_ids().await;
        let err = w
            .cli(&["rotate", "--node", "k3s-w2", "--approve"])
            .await
            .expect_err("the rotation is refused");
        assert!(err.contains("k3s-w1"), "{err}");
        assert!(
            err.to_lowercase().contains("notready") || err.contains("not Ready"),
            "{err}"
        );
        assert_eq!(w.server_ids().await, ids0, "a server was touched");
        assert!(w.with_sim(|sim, c| sim.cordoned(c)).is_empty());
    })
}

#[test]
fn rotating_the_only_server_is_refused_as_it_would_break_quorum_and_touches_nothing() {
    run(async {
        let w = World::before().await;
        let ids0 = w.server_ids().await;
        let err = w
            .cli(&["rotate", "--node", "k3s-mgr", "--approve"])
            .await
            .expect_err("the rotation is refused");
        assert!(err.contains("k3s-mgr"), "{err}");
        assert!(
            err.contains("quorum") || err.contains("only server"),
            "refused for quorum: {err}"
        );
        assert_eq!(w.server_ids().await, ids0, "a server was touched");
        assert!(w.with_sim(|sim, c| sim.cordoned(c)).is_empty());
        let ready = w.with_sim(|sim, c| sim.nodes(c).iter().all(|n| n.ready));
        assert!(ready);
    })
}

#[test]
fn a_drain_blocked_by_the_disruption_budget_times_out_leaving_the_node_cordoned_and_naming_the_pod()
{
    run_with_env(&[("CAIRN_DRAIN_TIMEOUT_SECS", "3")], async {
        let w = World::bootstrapped().await;
        w.with_sim(|sim, c| sim.set_pdb_min_available(c, DOCFAST, DOCFAST, 2));
        let ids0 = w.server_ids().await;
        let err = w
            .cli(&["rotate", "--node", "k3s-w1", "--approve"])
            .await
            .expect_err("the drain times out");
        assert!(err.contains("drain of node k3s-w1 timed out"), "{err}");
        assert!(err.contains("pod docfast/docfast-"), "{err}");
        assert!(err.contains("PodDisruptionBudget docfast/docfast"), "{err}");
        assert_eq!(
            w.with_sim(|sim, c| sim.cordoned(c)),
            ["k3s-w1"],
            "the node stays cordoned"
        );
        assert_eq!(w.server_ids().await, ids0, "no server was replaced");
        assert_eq!(
            w.with_sim(|sim, c| sim.ready_replicas(c, DOCFAST, DOCFAST)),
            2,
            "no pod was evicted"
        );
        let runs = rotate_runs().await;
        assert!(
            runs.first()
                .is_some_and(|(r, _)| r.status == cairn_core::backend::status::FAILED),
            "{runs:?}"
        );
    })
}

#[test]
fn a_failed_rejoin_stops_the_rotation_before_the_next_node() {
    run(async {
        let w = World::bootstrapped().await;
        let ids0 = w.server_ids().await;
        w.with_sim(|sim, _| sim.fail_next_k3s_join("k3s-mgr"));
        let err = w
            .cli(&["rotate", "--all", "--approve"])
            .await
            .expect_err("the rotation stops although k3s-mgr could not rejoin");
        assert!(err.contains("rotation of node k3s-mgr stopped"), "{err}");
        assert!(
            err.contains("node_k3s_server.k3s-mgr") && err.contains("401 Unauthorized"),
            "the rejoin's failure is the reason: {err}"
        );
        let ids1 = w.server_ids().await;
        assert_ne!(ids1["k3s-mgr"], ids0["k3s-mgr"], "k3s-mgr was replaced");
        for node in &NODES[1..] {
            assert_eq!(
                ids1[*node], ids0[*node],
                "{node} was touched after the failure"
            );
        }
        let cordoned = w.with_sim(|sim, c| sim.cordoned(c));
        assert!(
            cordoned.iter().all(|n| n == "k3s-mgr"),
            "only the failed node may be left cordoned: {cordoned:?}"
        );
        let runs = rotate_runs().await;
        let (r, changes) = runs.first().expect("the rotation is in the history");
        assert_eq!(r.status, cairn_core::backend::status::FAILED, "{r:?}");
        assert!(phase(changes, "k3s-mgr", "failed").is_some(), "{changes:?}");
        assert!(phase(changes, "k3s-mgr", "done").is_none(), "{changes:?}");
        assert!(
            phase(changes, "k3s-cp2", "started").is_none(),
            "the next node was started: {changes:?}"
        );
    })
}
