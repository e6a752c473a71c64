//! Rotation: replacing a stack's machines one at a time (cordon, drain, leave, replace,
//! rejoin, gates, uncordon), the contract between the CLI's `rotate` command, which
//! orders, approves, records and resumes rotations, and a stack's rotation, which knows its
//! nodes (e.g. the k3s nodes on Hetzner servers).
//!
//! The CLI rotates one node at a time: [`Rotation::preflight`] (refuses while any node is
//! NotReady or when quorum would drop below a majority), then [`Rotation::before`] (cordon,
//! drain, leave the cluster), then an apply of the stack's plan with the node's
//! [`Rotation::machine`] forced to be replaced (its dependents follow by reference), then
//! [`Rotation::after`] (Ready and quorum gates, uncordon). The steps each phase will run
//! are shown in the rotation's plan ([`Rotation::before_steps`], [`Rotation::after_steps`])
//! before the approval gate.

use std::time::Duration;

use async_trait::async_trait;

use crate::value::Address;

/// A stack's rotatable nodes and the steps around replacing one node's machine.
#[async_trait]
pub trait Rotation: Send + Sync {
    /// Every rotatable node, in the order `--all` rotates them (servers first).
    fn nodes(&self) -> Vec<String>;

    /// The resource whose replacement rebuilds `node`'s machine (e.g.
    /// `hetzner_server.k3s-w1`); `None` for a name that is not a node of this rotation.
    fn machine(&self, node: &str) -> Option<Address>;

    /// How often each node should be rotated (the declared schedule `rotate --due` follows
    /// in CI); `None` when the stack declares none.
    fn period(&self) -> Option<Duration> {
        None
    }

    /// Checks that rotating `node` now is safe: every node Ready, and quorum kept. The
    /// error names the node that blocks it (and why).
    async fn preflight(&self, node: &str) -> Result<(), String>;

    /// The steps [`Rotation::before`] runs for `node`, one line each, as the plan shows them.
    fn before_steps(&self, node: &str) -> Vec<String>;

    /// Takes `node` out of service before its machine is replaced: cordon, drain (PDBs
    /// respected, with a timeout that fails and leaves the node cordoned, naming the pod
    /// that blocks), leave the cluster (a server leaves etcd cleanly). Safe to run again
    /// after an interruption.
    async fn before(&self, node: &str) -> Result<(), String>;

    /// The steps [`Rotation::after`] runs for `node`, one line each.
    fn after_steps(&self, node: &str) -> Vec<String>;

    /// Brings `node` back after its machine was replaced and the stack applied (which
    /// reinstalled and rejoined it): Ready and quorum gates, uncordon.
    async fn after(&self, node: &str) -> Result<(), String>;
}
