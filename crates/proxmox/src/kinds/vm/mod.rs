//! The `proxmox_vm` kind: a QEMU VM, usually cloned from a cloud-init template. The spec
//! is in [`spec`] (its typed values in [`values`]), reading the world back in [`observe`],
//! the ownership marker in [`marker`], and the converge sequence in [`converge`]; this file
//! binds them into a [`Kind`] with its plan steps.

pub mod converge;
pub mod marker;
pub mod observe;
pub mod spec;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, Op, Query};

pub use converge::{config_delta, desired_config};
pub use marker::{
    MARKER_TAG_PREFIX, TRAILER_PREFIX, Trailer, join_description, marker_tag, split_description,
};
pub use observe::{VmObserved, observed_from_config, parse_nic};
pub use spec::{
    CloneFrom, CloneMode, CloudInit, DiskBus, DiskSlot, IpConfig, Nic, NicModel, PowerState, Vm,
    VmRefs,
};

use crate::error::Error;
use crate::provider::ProxmoxCtx;

/// The `proxmox_vm` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vms;

/// One step of a VM change, as shown in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmStep {
    /// Clone the template (by VMID or `'name'`) in the given mode.
    Clone {
        /// The template's VMID, or its quoted name when looked up at create time.
        source: String,
        /// Full or linked.
        mode: CloneMode,
    },
    /// Create an empty VM (no clone source).
    CreateEmpty,
    /// Write the config (guarded by its digest).
    Configure,
    /// Write the config of a running VM; the named fields wait for a restart.
    ConfigurePending(Vec<&'static str>),
    /// Grow a disk to a size.
    Grow(DiskSlot, String),
    /// Start the VM.
    Start,
    /// Stop the VM (before destroying it).
    Stop,
    /// Destroy the VM and its disks.
    Destroy,
}

impl fmt::Display for VmStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmStep::Clone { source, mode } => write!(
                f,
                "clone template {source} ({mode}), wait for the task and the clone lock"
            ),
            VmStep::CreateEmpty => f.write_str("create the VM"),
            VmStep::Configure => {
                f.write_str("set cores, memory, network, cloud-init, tags (with digest)")
            }
            VmStep::ConfigurePending(fields) => write!(
                f,
                "update config; {} pending until the VM restarts",
                fields.join(", ")
            ),
            VmStep::Grow(slot, size) => write!(f, "grow {slot} to {size}"),
            VmStep::Start => f.write_str("start the VM"),
            VmStep::Stop => f.write_str("stop the VM"),
            VmStep::Destroy => f.write_str("destroy it (purging its disks)"),
        }
    }
}

/// The plan steps of a change from `before` to `after`.
pub fn steps(before: Option<&VmObserved>, after: Option<&Vm>) -> Vec<VmStep> {
    let Some(after) = after else {
        return vec![VmStep::Stop, VmStep::Destroy];
    };
    let mut steps = Vec::new();
    match before {
        Some(b) => {
            let b = &b.spec;
            let restart: Vec<&'static str> = spec::RESTART_FIELDS
                .into_iter()
                .filter(|f| match *f {
                    "cores" => b.cores != after.cores,
                    "sockets" => b.sockets != after.sockets,
                    "memory" => b.memory != after.memory,
                    _ => b.cloud_init != after.cloud_init,
                })
                .collect();
            if !restart.is_empty() && b.state == PowerState::Running {
                steps.push(VmStep::ConfigurePending(restart));
            }
        }
        None => {
            steps.push(match &after.clone {
                Some(c) => VmStep::Clone {
                    source: match c.vmid.as_ref().and_then(|v| v.known()) {
                        Some(v) => v.to_string(),
                        None => format!("'{}'", c.name.as_deref().unwrap_or("?")),
                    },
                    mode: c.mode,
                },
                None => VmStep::CreateEmpty,
            });
            steps.push(VmStep::Configure);
        }
    }
    let no_disks = BTreeMap::new();
    let had = before.map_or(&no_disks, |b| &b.spec.disks);
    for (slot, size) in &after.disks {
        if had.get(slot) != Some(size) {
            steps.push(VmStep::Grow(*slot, size.clone()));
        }
    }
    if after.state == PowerState::Running
        && before.is_none_or(|b| b.spec.state != PowerState::Running)
    {
        steps.push(VmStep::Start);
    }
    steps
}

#[async_trait]
impl Kind<ProxmoxCtx> for Vms {
    type Spec = Vm;
    type Observed = VmObserved;
    type Step = VmStep;

    async fn observe(
        &self,
        ctx: &ProxmoxCtx,
        q: Query<'_>,
    ) -> Result<Vec<Found<VmObserved>>, Error> {
        Ok(observe::observe(ctx.client(), q).await?)
    }

    fn steps(
        &self,
        _ctx: &ProxmoxCtx,
        before: Option<&VmObserved>,
        after: Option<&Vm>,
    ) -> Vec<VmStep> {
        steps(before, after)
    }

    async fn create(
        &self,
        ctx: &ProxmoxCtx,
        spec: &Vm,
        op: Op<'_, VmStep>,
    ) -> Result<VmObserved, Error> {
        let client = ctx.client();
        let _permit = client.node_permit(&spec.node).await;
        tracing::info!(vmid = spec.vmid, node = %spec.node, "creating VM");
        match observe::observe_one(client, spec.vmid).await? {
            Some(existing) => {
                let ours = existing
                    .marker
                    .as_ref()
                    .is_some_and(|m| m.owned_by(&op.marker.stack));
                if !ours {
                    return Err(Error::VmidTaken {
                        vmid: spec.vmid,
                        name: existing.value.spec.name,
                        stack: op.marker.stack.clone(),
                    });
                }
                tracing::info!(
                    vmid = spec.vmid,
                    "VM already exists (earlier attempt); converging it"
                );
            }
            None => match &spec.clone {
                Some(clone) => converge::clone_vm(client, spec, clone, op.marker).await?,
                None => converge::create_empty(client, spec, op.marker).await?,
            },
        }
        converge::converge(client, spec, op.marker).await?;
        observed_after(ctx, spec.vmid, "VM vanished after create").await
    }

    async fn update(
        &self,
        ctx: &ProxmoxCtx,
        _prior: &VmObserved,
        spec: &Vm,
        op: Op<'_, VmStep>,
    ) -> Result<VmObserved, Error> {
        let client = ctx.client();
        let _permit = client.node_permit(&spec.node).await;
        converge::converge(client, spec, op.marker).await?;
        observed_after(ctx, spec.vmid, "VM vanished during update").await
    }

    async fn delete(
        &self,
        ctx: &ProxmoxCtx,
        prior: &VmObserved,
        _op: Op<'_, VmStep>,
    ) -> Result<(), Error> {
        Ok(converge::destroy(ctx.client(), &prior.spec).await?)
    }

    fn example() -> Vm {
        let mut vm = Vm::cloned(205, "k8s-master-2", "pve", 9000);
        vm.clone = Some(CloneFrom {
            vmid: Some(9000.into()),
            name: Some("ubuntu-2404-cloudinit".into()),
            mode: CloneMode::Full,
        });
        vm.disks.insert(DiskSlot::scsi(0), "64G".into());
        if let Some(nic) = vm.networks.get_mut("net0") {
            nic.tag = Some(20);
            nic.macaddr = Some("BC:24:11:00:00:01".into());
        }
        vm.cloud_init = CloudInit {
            ciuser: Some("ubuntu".into()),
            sshkeys: vec!["ssh-ed25519 AAAA ops@lab".into()],
            ipconfig: BTreeMap::from([(
                "ipconfig0".into(),
                IpConfig {
                    ip: "10.0.20.110/24".into(),
                    gw: Some("10.0.20.1".into()),
                },
            )]),
            nameserver: Some("10.0.20.1".into()),
            searchdomain: Some("home.arpa".into()),
        };
        vm.tags = vec!["k8s".into()];
        vm.description = "Kubernetes control plane".into();
        vm
    }

    fn example_observed() -> Option<VmObserved> {
        Some(VmObserved {
            spec: Self::example(),
            ipv4: Some(std::net::Ipv4Addr::new(10, 0, 20, 110)),
        })
    }
}

async fn observed_after(ctx: &ProxmoxCtx, vmid: u32, vanished: &str) -> Result<VmObserved, Error> {
    observe::observe_one(ctx.client(), vmid)
        .await?
        .map(|f| f.value)
        .ok_or_else(|| Error::Vanished(vanished.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{VmConfig, VmStatus};
    use cairn_core::{Marker, Resource};

    fn master() -> Vm {
        let mut vm = Vm::cloned(205, "k8s-master-2", "pve", 9000);
        vm.cores = 8;
        vm.memory = 16384;
        vm.disks.insert(DiskSlot::scsi(0), "64G".into());
        vm.networks.get_mut("net0").unwrap().bridge = "vmbr1".into();
        vm.networks.get_mut("net0").unwrap().tag = Some(20);
        vm.cloud_init.ciuser = Some("ubuntu".into());
        vm.cloud_init.sshkeys = vec!["ssh-ed25519 AAAA+x/y= ops@lab".into()];
        vm.cloud_init.ipconfig.insert(
            "ipconfig0".into(),
            IpConfig {
                ip: "10.0.20.110/24".into(),
                gw: Some("10.0.20.1".into()),
            },
        );
        vm.tags = vec!["k8s".into(), "master".into()];
        vm
    }

    #[test]
    fn rendered_config_read_back_equals_the_spec() {
        let vm = master();
        let marker = Marker::created("homelab-ha", Some("abc".into()));
        let cfg = desired_config(&vm, &marker, &VmConfig::default());
        let mut live: Vec<(String, String)> = cfg
            .into_iter()
            .map(|(k, v)| (k, v.unwrap()))
            .filter(|(k, _)| k != "net0")
            .collect();
        live.push((
            "net0".into(),
            "virtio=BC:24:11:00:00:01,bridge=vmbr1,tag=20".into(),
        ));
        live.push((
            "scsi0".into(),
            "local-lvm:base-9000-disk-0/vm-205-disk-0,size=64G".into(),
        ));
        let live: VmConfig = live.into_iter().collect();
        let (obs, m) = observed_from_config(205, "pve", VmStatus::Running, &live);
        assert_eq!(m, Some(marker));
        let desired = serde_json::to_value(&vm).unwrap();
        let observed = serde_json::to_value(&obs).unwrap();
        let diff = cairn_core::diff::diff(&desired, &observed, &Vm::schema(), &[]);
        assert!(diff.is_empty(), "{diff:#?}");
        assert_eq!(observed["ipv4"], "10.0.20.110");
    }

    #[test]
    fn an_unpinned_mac_is_kept_and_a_nic_without_one_renders_the_bare_model() {
        let vm = master();
        let marker = Marker::created("s", None);
        let fresh = desired_config(&vm, &marker, &VmConfig::default());
        assert_eq!(fresh["net0"].as_deref(), Some("virtio,bridge=vmbr1,tag=20"));
        let live: VmConfig = [(
            "net0".to_string(),
            "virtio=BC:24:11:00:00:01,bridge=vmbr1,tag=20".to_string(),
        )]
        .into_iter()
        .collect();
        let kept = desired_config(&vm, &marker, &live);
        assert_eq!(
            kept["net0"].as_deref(),
            Some("virtio=BC:24:11:00:00:01,bridge=vmbr1,tag=20")
        );
        let (set, _) = config_delta(&kept, &live);
        assert!(set.iter().all(|(k, _)| k != "net0"), "{set:?}");
    }

    #[test]
    fn uppercase_duplicate_and_reserved_tags_are_refused_naming_the_field() {
        let mut vm = master();
        vm.tags = vec!["K8s".into(), "x".into(), "x".into(), "cairn.other".into()];
        let errs = vm.validate();
        assert_eq!(
            errs.iter().filter(|e| e.field == "tags").count(),
            3,
            "{errs:?}"
        );
    }

    #[test]
    fn steps_of_a_clone_an_update_and_a_delete_read_as_before() {
        let vm = master();
        let shown: Vec<String> = steps(None, Some(&vm))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "clone template 9000 (linked), wait for the task and the clone lock",
                "set cores, memory, network, cloud-init, tags (with digest)",
                "grow scsi0 to 64G",
                "start the VM",
            ]
        );
        let before = VmObserved {
            spec: vm.clone(),
            ipv4: None,
        };
        let mut bigger = vm.clone();
        bigger.memory *= 2;
        bigger.disks.insert(DiskSlot::scsi(0), "128G".into());
        let shown: Vec<String> = steps(Some(&before), Some(&bigger))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "update config; memory pending until the VM restarts",
                "grow scsi0 to 128G"
            ]
        );
        let shown: Vec<String> = steps(Some(&before), None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["stop the VM", "destroy it (purging its disks)"]);
    }
}
