//! hetzner-k3s grows to an HA control plane and upgrades in place, end to end against the
//! Hetzner simulator, real sshd hosts and the cluster simulator (loopback only; needs root):
//! the first plan on the hand-made world shows two new servers joining and `k3s-mgr`
//! migrating to etcd, the apply converges to three healthy etcd members with every node
//! Ready, and a version change rolls through the nodes one at a time, servers first, while
//! the docfast deployment keeps a ready replica — sampled continuously through the
//! simulator's hooks.

#[path = "common/k3s.rs"]
mod k3s;

use cairn_core::{Action, plan};
use k3s::{
    AGENTS, NODES, SERVERS, Sampler, World, cordon_order, cordoned_in_order, first_change, run,
};

#[test]
fn the_first_plan_grows_the_single_server_to_three_etcd_servers_and_the_apply_converges() {
    run(async {
        let w = World::before().await;
        let (healthy, members) = w.with_sim(|sim, c| sim.etcd_health(c));
        assert_eq!(
            (healthy, members),
            (0, 0),
            "the hand-made server runs SQLite"
        );

        let planned = plan(&w.loaded.stack, &w.loaded.providers)
            .await
            .expect("plan");
        let action = |addr: &str| {
            planned
                .plan
                .resource_changes
                .iter()
                .find(|c| c.address.to_string() == addr)
                .unwrap_or_else(|| panic!("{addr} is not in the plan"))
                .action
        };
        for new in ["k3s-cp2", "k3s-cp3"] {
            assert_eq!(
                action(&format!("hetzner_server.{new}")),
                Some(Action::Create)
            );
            assert_eq!(
                action(&format!("node_k3s_server.{new}")),
                Some(Action::Create)
            );
        }
        // k3s-mgr migrates to etcd in place: an update, never a rebuild; the workers stay.
        assert_eq!(action("node_k3s_server.k3s-mgr"), Some(Action::Update));
        for kept in ["k3s-mgr", "k3s-w1", "k3s-w2"] {
            let a = action(&format!("hetzner_server.{kept}"));
            assert!(
                matches!(a, Some(Action::NoOp) | Some(Action::Update)),
                "{kept}: {a:?}"
            );
        }
        assert_eq!(action("hetzner_firewall.coolify-fw"), Some(Action::Update));

        let failed = w.apply_stack(&w.loaded.stack).await;
        assert!(failed.is_empty(), "{failed}");

        let (healthy, members, nodes) = w.with_sim(|sim, c| {
            let (h, m) = sim.etcd_health(c);
            (h, m, sim.nodes(c))
        });
        assert_eq!((healthy, members), (3, 3), "{nodes:?}");
        let mut names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
        names.sort();
        let mut want = NODES.to_vec();
        want.sort();
        assert_eq!(names, want);
        assert!(nodes.iter().all(|n| n.ready), "{nodes:?}");
        for s in SERVERS {
            assert!(
                nodes.iter().any(|n| n.name == s && n.control_plane),
                "{s} is a server: {nodes:?}"
            );
        }
        let ready = w.with_sim(|sim, c| sim.ready_replicas(c, k3s::DOCFAST, k3s::DOCFAST));
        assert_eq!(ready, 2, "docfast still runs both replicas");

        let left = w.pending(&w.loaded.stack).await;
        assert!(left.is_empty(), "a second plan changes {left:?}");
    })
}

#[test]
fn a_version_change_upgrades_one_node_at_a_time_servers_first_while_docfast_stays_ready() {
    run(async {
        let w = World::bootstrapped().await;
        let upgraded = w
            .stack_with_version(k3s::NEXT_VERSION)
            .expect("hetzner-k3s built with another k3s version");
        let before = w.pending(&upgraded).await;
        for node in NODES {
            assert!(
                before.iter().any(|c| c.contains(&format!(".{node} "))),
                "{node} is upgraded: {before:?}"
            );
        }

        let sampler = Sampler::start(w.sims.clone());
        let failed = w.apply_stack(&upgraded).await;
        let samples = sampler.finish();
        assert!(failed.is_empty(), "{failed}");

        assert!(samples.len() >= 10, "only {} samples", samples.len());
        let most = samples.iter().map(|s| s.cordoned.len()).max().unwrap();
        assert!(
            most <= 1,
            "two nodes cordoned at once: {:?}",
            samples.iter().find(|s| s.cordoned.len() > 1)
        );
        // Nodes were cordoned in the declared chain's order, servers first (a server without
        // pods may be cordoned and back between two samples); the agents, whose drains wait
        // for docfast's replacement pods, were seen cordoned.
        assert!(
            cordoned_in_order(&samples),
            "cordon order {:?}",
            cordon_order(&samples)
        );
        let seen = cordon_order(&samples);
        for a in AGENTS {
            assert!(
                seen.iter().any(|n| n == a),
                "{a} never seen cordoned: {seen:?}"
            );
        }
        let first_agent = samples
            .iter()
            .position(|s| s.cordoned.iter().any(|n| AGENTS.contains(&n.as_str())))
            .unwrap();
        assert!(
            samples[first_agent..]
                .iter()
                .all(|s| !s.cordoned.iter().any(|n| SERVERS.contains(&n.as_str()))),
            "a server was cordoned after the agents started"
        );
        // Every node's k3s was restarted by its upgrade, one after the other, servers first.
        let first = &samples[0].k3s_starts;
        let now: std::collections::BTreeMap<String, u32> = w.with_sim(|sim, _| {
            NODES
                .iter()
                .map(|n| (n.to_string(), sim.k3s_starts(n)))
                .collect()
        });
        for n in NODES {
            assert!(
                now[n] > first[n],
                "{n}'s k3s never restarted: {first:?} -> {now:?}"
            );
        }
        let restarted = first_change(&samples, |s, n| s.k3s_starts[n]);
        let at: Vec<usize> = NODES.iter().filter_map(|n| restarted[*n]).collect();
        assert!(
            at.windows(2).all(|w| w[0] <= w[1]),
            "k3s restarts out of order: {restarted:?}"
        );
        let least = samples.iter().map(|s| s.ready_replicas).min().unwrap();
        assert!(least >= 1, "docfast had {least} ready replicas");
        let moved = k3s::new_pods(&samples);
        assert!(
            moved.len() >= 2,
            "docfast's pods never moved (did the drains evict?): {moved:?}"
        );
        assert!(
            samples.iter().all(|s| s.quorum()),
            "etcd lost quorum: {:?}",
            samples.iter().find(|s| !s.quorum())
        );

        let left = w.pending(&upgraded).await;
        assert!(left.is_empty(), "after the upgrade a plan changes {left:?}");
        let cordoned = w.with_sim(|sim, c| sim.cordoned(c));
        assert!(cordoned.is_empty(), "left cordoned: {cordoned:?}");
    })
}
