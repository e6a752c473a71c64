//! Checked-in simulator fixtures ("before" worlds for the stacks).

use serde_json::Value;

/// The Hetzner part of the k3s cluster as it exists before cairn manages it: made by hand,
/// without any cairn label (3 CAX11 servers on `k3s-net` 10.0.0.0/16, the `k3s-lb` load
/// balancer, the `k3s-fw` firewall and the `docfast.dev` zone with A records at the LB).
pub fn k3s_before() -> Value {
    serde_json::from_str(include_str!("../fixtures/k3s-before.json"))
        .expect("fixture is valid JSON")
}
