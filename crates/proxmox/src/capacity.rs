//! Plan-time checks: per-node host memory commitment after the plan against physical
//! memory × the allowed ratio (`proxmox.memory_ratio`, default 1.0), and disk shrinks.

use std::collections::BTreeMap;

use cairn_core::{CheckResult, PlannedChange, Resource};
use serde::Deserialize;
use serde_json::Value;

use crate::api;
use crate::client::{PveClient, PveError};
use crate::kinds::vm::Vm;
use crate::propstr;

/// The stack setting holding the allowed memory over-commit ratio.
pub const RATIO_SETTING: &str = "proxmox.memory_ratio";

const MIB: i128 = 1 << 20;

/// Formats bytes as GiB: whole numbers without decimals, else one decimal.
pub fn gib(bytes: i128) -> String {
    let g = bytes as f64 / (1u64 << 30) as f64;
    if (g - g.round()).abs() < 0.05 {
        format!("{} GiB", g.round() as i64)
    } else {
        format!("{g:.1} GiB")
    }
}

/// The part of a VM (desired or observed) the checks read.
#[derive(Deserialize)]
struct Footprint {
    node: String,
    /// MiB.
    memory: u64,
}

/// The disks of a VM (desired or observed), by slot.
#[derive(Deserialize)]
struct Disks {
    #[serde(default)]
    disks: BTreeMap<String, String>,
}

impl Disks {
    fn of(v: &Value) -> Option<Disks> {
        Disks::deserialize(v).ok()
    }
}

impl Footprint {
    fn of(v: &Value) -> Option<Footprint> {
        Footprint::deserialize(v).ok()
    }

    /// Bytes, widened so that no `memory` (up to `u64::MAX` MiB) can wrap.
    fn bytes(&self) -> i128 {
        i128::from(self.memory) * MIB
    }
}

/// One VM's contribution to a node's planned change.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// Resource address.
    pub address: String,
    /// VMID.
    pub vmid: String,
    /// Bytes added (negative: freed).
    pub delta: i128,
}

/// Planned memory change per node from the plan's VM changes.
pub fn planned_by_node(changes: &[PlannedChange<'_>]) -> BTreeMap<String, Vec<Contribution>> {
    let mut out: BTreeMap<String, Vec<Contribution>> = BTreeMap::new();
    for c in changes.iter().filter(|c| c.kind == Vm::KIND) {
        let before = c.before.and_then(|b| Footprint::of(&b.value));
        let after = c.after.and_then(Footprint::of);
        let mut push = |node: &str, delta: i128| {
            if delta != 0 {
                out.entry(node.to_string()).or_default().push(Contribution {
                    address: c.address.to_string(),
                    vmid: c.key.to_string(),
                    delta,
                });
            }
        };
        match (before, after) {
            (Some(b), Some(a)) if b.node == a.node => push(&a.node, a.bytes() - b.bytes()),
            (b, a) => {
                if let Some(b) = b {
                    push(&b.node, -b.bytes());
                }
                if let Some(a) = a {
                    push(&a.node, a.bytes());
                }
            }
        }
    }
    out
}

/// The check for one node, given committed and physical memory (bytes). Sums saturate
/// instead of wrapping, so absurd sizes are refused, never waved through.
pub fn judge(
    node: &str,
    committed: u64,
    physical: u64,
    ratio: f64,
    contributions: &[Contribution],
) -> CheckResult {
    let planned: i128 = contributions
        .iter()
        .fold(0i128, |sum, c| sum.saturating_add(c.delta));
    let total = i128::from(committed).saturating_add(planned);
    let limit = physical as f64 * ratio;
    let passed = (total as f64) <= limit;
    let sign = if planned < 0 { "-" } else { "+" };
    let mut message = format!(
        "node {node}: {} committed {sign} {} planned = {} {} {} physical (ratio {ratio:.2})",
        gib(i128::from(committed)),
        gib(planned.saturating_abs()),
        gib(total),
        if passed { "<=" } else { ">" },
        gib(i128::from(physical)),
    );
    if !passed {
        let mut top: Vec<&Contribution> = contributions.iter().filter(|c| c.delta > 0).collect();
        top.sort_by(|a, b| b.delta.cmp(&a.delta).then(a.vmid.cmp(&b.vmid)));
        let names: Vec<String> = top
            .iter()
            .take(3)
            .map(|c| format!("{} (VM {}, +{})", c.address, c.vmid, gib(c.delta)))
            .collect();
        if !names.is_empty() {
            message.push_str(&format!("; adding the most: {}", names.join(", ")));
        }
    }
    CheckResult {
        name: format!("proxmox.host_capacity[{node}]"),
        passed,
        message,
    }
}

/// The over-commit ratio from the stack settings (default 1.0): a finite positive number.
fn ratio(settings: &BTreeMap<String, String>) -> Result<f64, PveError> {
    match settings.get(RATIO_SETTING) {
        Some(r) => r
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0)
            .ok_or_else(|| {
                PveError::Decode(format!("{RATIO_SETTING} = {r:?} is not a positive number"))
            }),
        None => Ok(1.0),
    }
}

/// Runs the capacity check: one `/cluster/resources` call plus `/nodes/{node}/status` per
/// node the plan changes. Read-only.
pub async fn check(
    client: &PveClient,
    changes: &[PlannedChange<'_>],
    settings: &BTreeMap<String, String>,
) -> Result<Vec<CheckResult>, PveError> {
    let by_node = planned_by_node(changes);
    if by_node.is_empty() {
        return Ok(Vec::new());
    }
    let ratio = ratio(settings)?;
    let res = api::vm_resources(client).await?;
    let mut out = Vec::new();
    for (node, contributions) in &by_node {
        let committed: u64 = res
            .iter()
            .filter(|r| r.node == *node && !r.template)
            .fold(0u64, |sum, r| sum.saturating_add(r.maxmem));
        let physical = api::node_memory(client, node).await?.total;
        out.push(judge(node, committed, physical, ratio, contributions));
    }
    Ok(out)
}

/// Refuses disk shrinks at plan time, naming the VM and the disk.
pub fn disk_shrinks(changes: &[PlannedChange<'_>]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for c in changes.iter().filter(|c| c.kind == Vm::KIND) {
        let (Some(before), Some(after)) = (
            c.before.and_then(|b| Disks::of(&b.value)),
            c.after.and_then(Disks::of),
        ) else {
            continue;
        };
        for (slot, size) in &after.disks {
            let want = propstr::parse_size(size);
            let have = before.disks.get(slot).and_then(|s| propstr::parse_size(s));
            if let (Some(w), Some(h)) = (want, have)
                && w < h
            {
                out.push(CheckResult {
                    name: format!("proxmox.disk_shrink[{}]", c.address),
                    passed: false,
                    message: format!(
                        "{}: disks.{slot}: cannot shrink disk {slot} of VM {} from {} to {size} (Proxmox disks only grow)",
                        c.address,
                        c.key,
                        propstr::format_size(h),
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_commit_message_has_the_numbers_and_the_biggest_vms() {
        let g = 1u64 << 30;
        let c = |a: &str, id: &str| Contribution {
            address: a.into(),
            vmid: id.into(),
            delta: 32 * g as i128,
        };
        let r = judge(
            "pve",
            262 * g,
            267 * g,
            1.0,
            &[
                c("proxmox_vm.master-2", "205"),
                c("proxmox_vm.master-3", "206"),
            ],
        );
        assert!(!r.passed);
        assert!(
            r.message.starts_with("node pve: 262 GiB committed + 64 GiB planned = 326 GiB > 267 GiB physical (ratio 1.00)"),
            "{}",
            r.message
        );
        assert!(r.message.contains("proxmox_vm.master-2 (VM 205, +32 GiB)"));
        let ok = judge("pve", 262 * g, 267 * g, 1.5, &[c("a", "205")]);
        assert!(ok.passed, "{}", ok.message);
    }

    fn vm_change<'a>(
        address: &'a cairn_core::Address,
        key: &'a str,
        after: &'a Value,
    ) -> PlannedChange<'a> {
        PlannedChange {
            kind: Vm::KIND,
            key,
            address,
            before: None,
            after: Some(after),
        }
    }

    fn absurd(vmid: u32, memory: u64) -> Value {
        let mut vm = Vm::cloned(vmid, "absurd", "pve", 9000);
        vm.memory = memory;
        serde_json::to_value(vm).unwrap()
    }

    #[test]
    fn absurd_memory_on_two_vms_is_refused_not_wrapped() {
        let g = 1u64 << 30;
        let (a, b) = (
            cairn_core::Address::new(Vm::KIND, "a"),
            cairn_core::Address::new(Vm::KIND, "b"),
        );
        let (va, vb) = (absurd(205, u64::MAX / 2), absurd(206, u64::MAX / 2));
        let by_node = planned_by_node(&[vm_change(&a, "205", &va), vm_change(&b, "206", &vb)]);
        let r = judge("pve", 262 * g, 267 * g, 1.0, &by_node["pve"]);
        assert!(!r.passed, "{}", r.message);
        assert!(r.message.contains(" > 267 GiB physical"), "{}", r.message);
        assert!(
            r.message
                .contains("adding the most: proxmox_vm.a (VM 205, +"),
            "{}",
            r.message
        );
        // 2^44 MiB is exactly 2^64 bytes: a u64 product wraps to 0 and would have passed.
        let wraps = absurd(207, 1 << 44);
        let by_node = planned_by_node(&[vm_change(&a, "207", &wraps)]);
        assert_eq!(by_node["pve"][0].delta, 1i128 << 64);
        assert!(!judge("pve", 0, 267 * g, 1.0, &by_node["pve"]).passed);
        // A committed sum that would wrap saturates and is refused too.
        assert!(!judge("pve", u64::MAX, u64::MAX / 2, 1.0, &by_node["pve"]).passed);
    }

    #[test]
    fn a_ratio_that_is_not_finite_is_refused() {
        for r in ["inf", "NaN", "0", "-1", "x"] {
            let s = BTreeMap::from([(RATIO_SETTING.to_string(), r.to_string())]);
            assert!(ratio(&s).is_err(), "{r}");
        }
        let s = BTreeMap::from([(RATIO_SETTING.to_string(), "1.25".to_string())]);
        assert_eq!(ratio(&s).unwrap(), 1.25);
    }

    #[test]
    fn gib_prints_whole_numbers_plainly() {
        assert_eq!(gib(3 << 29), "1.5 GiB");
        assert_eq!(gib(262 << 30), "262 GiB");
    }
}
