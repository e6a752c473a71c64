//! Plan-time checks: per-node host memory commitment after the plan against physical
//! memory × the allowed ratio (`proxmox.memory_ratio`, default 1.0), and disk shrinks.

use std::collections::BTreeMap;

use cairn_core::{CheckResult, PlannedChange, Resource};
use serde_json::Value;

use crate::api;
use crate::client::{PveClient, PveError};
use crate::vm::Vm;

/// The stack setting holding the allowed memory over-commit ratio.
pub const RATIO_SETTING: &str = "proxmox.memory_ratio";

const MIB: u64 = 1 << 20;

/// Formats bytes as GiB: whole numbers without decimals, else one decimal.
pub fn gib(bytes: i128) -> String {
    let g = bytes as f64 / (1u64 << 30) as f64;
    if (g - g.round()).abs() < 0.05 {
        format!("{} GiB", g.round() as i64)
    } else {
        format!("{g:.1} GiB")
    }
}

fn mem_of(v: Option<&Value>) -> Option<(String, u64)> {
    let v = v?;
    Some((v["node"].as_str()?.to_string(), v["memory"].as_u64()? * MIB))
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
        let before = mem_of(c.before.map(|b| &b.value));
        let after = mem_of(c.after);
        let mut push = |node: String, delta: i128| {
            if delta != 0 {
                out.entry(node).or_default().push(Contribution {
                    address: c.address.to_string(),
                    vmid: c.key.to_string(),
                    delta,
                });
            }
        };
        match (before, after) {
            (Some((bn, bm)), Some((an, am))) if bn == an => push(an, am as i128 - bm as i128),
            (b, a) => {
                if let Some((n, m)) = b {
                    push(n, -(m as i128));
                }
                if let Some((n, m)) = a {
                    push(n, m as i128);
                }
            }
        }
    }
    out
}

/// The check for one node, given committed and physical memory.
pub fn judge(
    node: &str,
    committed: u64,
    physical: u64,
    ratio: f64,
    contributions: &[Contribution],
) -> CheckResult {
    let planned: i128 = contributions.iter().map(|c| c.delta).sum();
    let total = committed as i128 + planned;
    let limit = physical as f64 * ratio;
    let passed = (total as f64) <= limit;
    let sign = if planned < 0 { "-" } else { "+" };
    let mut message = format!(
        "node {node}: {} committed {sign} {} planned = {} {} {} physical (ratio {ratio:.2})",
        gib(committed as i128),
        gib(planned.abs()),
        gib(total),
        if passed { "<=" } else { ">" },
        gib(physical as i128),
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
    let ratio = match settings.get(RATIO_SETTING) {
        Some(r) => r.parse::<f64>().ok().filter(|r| *r > 0.0).ok_or_else(|| {
            PveError::Decode(format!("{RATIO_SETTING} = {r:?} is not a positive number"))
        })?,
        None => 1.0,
    };
    let res = api::vm_resources(client).await?;
    let mut out = Vec::new();
    for (node, contributions) in &by_node {
        let committed: u64 = res
            .iter()
            .filter(|r| r.node == *node && !r.template)
            .map(|r| r.maxmem)
            .sum();
        let physical = api::node_memory(client, node).await?.total;
        out.push(judge(node, committed, physical, ratio, contributions));
    }
    Ok(out)
}

/// Refuses disk shrinks at plan time, naming the VM and the disk.
pub fn disk_shrinks(changes: &[PlannedChange<'_>]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for c in changes.iter().filter(|c| c.kind == Vm::KIND) {
        let (Some(before), Some(after)) = (c.before, c.after) else {
            continue;
        };
        let Some(disks) = after["disks"].as_object() else {
            continue;
        };
        for (slot, size) in disks {
            let want = size.as_str().and_then(crate::propstr::parse_size);
            let have = before.value["disks"][slot]
                .as_str()
                .and_then(crate::propstr::parse_size);
            if let (Some(w), Some(h)) = (want, have)
                && w < h
            {
                out.push(CheckResult {
                    name: format!("proxmox.disk_shrink[{}]", c.address),
                    passed: false,
                    message: format!(
                        "{}: disks.{slot}: cannot shrink disk {slot} of VM {} from {} to {} (Proxmox disks only grow)",
                        c.address,
                        c.key,
                        crate::propstr::format_size(h),
                        size.as_str().unwrap_or("?")
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

    #[test]
    fn gib_prints_whole_numbers_plainly() {
        assert_eq!(gib(3 << 29), "1.5 GiB");
        assert_eq!(gib(262 << 30), "262 GiB");
    }
}
