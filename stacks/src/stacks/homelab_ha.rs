//! homelab-ha: move the Kubernetes control plane from one master (VM 200) to three behind
//! a pfSense HAProxy VIP, without ever leaving the VIP without a ready backend.
//!
//! The cutover, as a graph:
//! VIP → frontend + pool with only the existing master → gate: the VIP answers `/readyz`
//! → DNS override flips to the VIP → master VM 205 → gate: its `/readyz` → safe add to the
//! pool (disabled → health check passes → active) → master VM 206 → gate → safe add.
//! Nothing that clients use moves before the thing it moves to is proven ready.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_core::gate::{GateTiming, HttpProbe};
use cairn_core::net::Dialer;
use cairn_core::tls::TlsTrust;
use cairn_core::{Providers, Stack, StackBuilder};
use cairn_pfsense::{
    DnsHostOverride, HaproxyBackend, HaproxyBackendRefs, HaproxyFrontend, HaproxyPoolMember,
    PfSenseProvider, VirtualIp, VirtualIpRefs,
};
use cairn_proxmox::{
    DiskSlot, IpConfig, ProxmoxProvider, PveClient, Template, TemplateRefs, Vm, VmRefs,
};

use super::{Loaded, StackDef, Target};
use crate::sims::{Homelab, K8S_CA_FILE_ENV, SimKnobs};

/// The stack's definition.
pub const DEF: StackDef = StackDef {
    name: "homelab-ha",
    credentials: &[
        "PROXMOX_VE_ENDPOINT",
        "PROXMOX_VE_API_TOKEN",
        "PFSENSE_URL",
        "PFSENSE_API_KEY",
    ],
    load: |target| Box::pin(load(target)),
};

/// The VIP clients reach the control plane by.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 20, 99);
/// The apiserver port.
pub const PORT: u16 = 6443;
/// The DNS name that flips to the VIP.
pub const DNS_HOST: &str = "k8s-apiserver";
/// The local domain.
pub const DOMAIN: &str = "home.arpa";

/// What the stack is parameterised by.
#[derive(Debug, Clone)]
pub struct Params {
    /// Memory per new master, GiB (`HOMELAB_MASTER_MEMORY_GIB`). The default fits the host:
    /// 262 GiB committed + 2 × 2 GiB = 266 GiB ≤ 267 GiB. At 32 GiB the plan is refused.
    pub master_memory_gib: u64,
    /// How long a readiness gate waits (`CAIRN_GATE_TIMEOUT_SECS`, default 600).
    pub gate_timeout: Duration,
    /// How often a gate probes.
    pub gate_interval: Duration,
}

impl Params {
    /// Reads the parameters from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let num = |name: &str, default: u64| -> anyhow::Result<u64> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .with_context(|| format!("{name} must be a whole number, got {v:?}")),
                Err(_) => Ok(default),
            }
        };
        let master_memory_gib = num("HOMELAB_MASTER_MEMORY_GIB", 2)?;
        // Proxmox VE accepts at most 4 TiB per VM; anything larger is a typo, and a value
        // near u64::MAX would wrap when turned into MiB.
        if !(1..=MAX_VM_MEMORY_GIB).contains(&master_memory_gib) {
            anyhow::bail!(
                "HOMELAB_MASTER_MEMORY_GIB must be between 1 and {MAX_VM_MEMORY_GIB} GiB, got {master_memory_gib}"
            );
        }
        Ok(Params {
            master_memory_gib,
            gate_timeout: Duration::from_secs(num("CAIRN_GATE_TIMEOUT_SECS", 600)?),
            gate_interval: Duration::from_millis(500),
        })
    }
}

/// The most memory Proxmox VE gives one VM, GiB.
pub const MAX_VM_MEMORY_GIB: u64 = 4096;

/// The new masters: (stack name, VMID, address).
pub const NEW_MASTERS: [(&str, u32, Ipv4Addr); 2] = [
    ("k8s-master-2", 205, Ipv4Addr::new(10, 0, 20, 110)),
    ("k8s-master-3", 206, Ipv4Addr::new(10, 0, 20, 111)),
];

fn ipconfig(ip: Ipv4Addr) -> IpConfig {
    IpConfig {
        ip: format!("{ip}/24"),
        gw: Some("10.0.20.1".into()),
    }
}

/// A control-plane VM as the homelab builds them: 8 cores, a 64 GiB disk, on VLAN 20 of
/// `vmbr1`, cloud-init user `ubuntu` with a static address.
fn master_vm(
    vmid: u32,
    name: &str,
    template: impl Into<cairn_core::Field<u32>>,
    memory_gib: u64,
    ip: Ipv4Addr,
) -> Vm {
    let mut vm = Vm::cloned(vmid, name, "pve", template);
    vm.cores = 8;
    vm.memory = memory_gib.saturating_mul(1024);
    vm.disks.insert(DiskSlot::scsi(0), "64G".into());
    if let Some(nic) = vm.networks.get_mut("net0") {
        nic.bridge = "vmbr1".into();
        nic.tag = Some(20);
    }
    vm.cloud_init.ciuser = Some("ubuntu".into());
    vm.cloud_init
        .ipconfig
        .insert("ipconfig0".into(), ipconfig(ip));
    vm
}

/// The existing master as it stands (made by hand, 32 GiB): adopted, never replaced.
fn existing_master() -> Vm {
    let mut vm = master_vm(200, "k8s-master", 9000, 32, Ipv4Addr::new(10, 0, 20, 100));
    vm.clone = None;
    vm.tags = vec!["k8s".into()];
    vm
}

fn readyz(
    name: &str,
    ip: Ipv4Addr,
    p: &Params,
    dialer: &Dialer,
    trust: Option<&TlsTrust>,
) -> (String, HttpProbe, GateTiming) {
    (
        name.to_string(),
        {
            let probe = HttpProbe::get(&format!("https://{ip}:{PORT}/readyz"), dialer.clone());
            match trust {
                Some(t) => probe.trust(t.clone()),
                None => probe,
            }
        },
        GateTiming {
            interval: p.gate_interval,
            timeout: p.gate_timeout,
        },
    )
}

/// Declares the stack. `trust` is how gates verify the apiservers (the cluster CA); without
/// it the plan is still made (drift needs no gate), but a gate that runs fails saying so.
pub fn build(p: &Params, dialer: &Dialer, trust: Option<&TlsTrust>) -> anyhow::Result<Stack> {
    let mut s = StackBuilder::new("homelab-ha");

    // pfSense: the VIP, the pool with only the existing master, the frontend.
    let vip = s.add(
        "apiserver",
        VirtualIp::ipalias(VIP, 24, "lan", "Kubernetes API VIP"),
    );
    let pool = s.add(
        "apiserver_nodes",
        HaproxyBackend::https_checked("apiserver_nodes", "/readyz", 2000)
            .servers_managed_as_members(),
    );
    let mut fe = HaproxyFrontend::tcp("apiserver_proxy_6443", VIP, PORT, "apiserver_nodes");
    fe.descr = "Kubernetes API".into();
    fe.addresses[0].address = vip.ip().into();
    fe.default_backend = pool.name().into();
    let frontend = s.add("apiserver_proxy_6443", fe);
    let first = s.add(
        "apiserver_nodes/k8s-master",
        HaproxyPoolMember::new(
            pool.name(),
            "k8s-master",
            Ipv4Addr::new(10, 0, 20, 100),
            PORT,
        ),
    );

    // Gate: the VIP serves /readyz through a ready backend.
    let (name, probe, timing) = readyz("vip-serves", VIP, p, dialer, trust);
    let vip_ready = s.gate(&name, probe, timing);
    s.depends_on(&vip_ready, &frontend)
        .depends_on(&vip_ready, &first);

    // Only then do clients move: the DNS name flips to the VIP.
    let dns = s.add(
        DNS_HOST,
        DnsHostOverride {
            host: DNS_HOST.into(),
            domain: DOMAIN.into(),
            ip: vec![vip.ip().into()],
            descr: "Kubernetes API via the HAProxy VIP".into(),
        },
    );
    s.depends_on(&dns, &vip_ready);

    // Proxmox: the existing master is adopted and protected.
    let master = s.add("k8s-master", existing_master());
    s.protect(&master);
    let template = s.add(
        "ubuntu-2404-cloudinit",
        Template::named("ubuntu-2404-cloudinit"),
    );

    // Each new master: VM → its /readyz → safe add to the pool → the next master.
    let mut previous: cairn_core::Address = cairn_core::NodeRef::address(&dns).clone();
    for (name, vmid, ip) in NEW_MASTERS {
        let mut vm = master_vm(
            vmid,
            name,
            template.template_vmid(),
            p.master_memory_gib,
            ip,
        );
        vm.cloud_init.nameserver = Some("10.0.20.1".into());
        vm.tags = vec!["k8s".into(), "master".into()];
        vm.description = "Kubernetes control plane".into();
        let vm = s.add(name, vm);
        s.depends_on(&vm, &previous);
        let (gate_name, probe, timing) = readyz(&format!("{name}-ready"), ip, p, dialer, trust);
        let ready = s.gate(&gate_name, probe, timing);
        s.depends_on(&ready, &vm);
        let member = s.add(
            &format!("apiserver_nodes/{name}"),
            HaproxyPoolMember::new(pool.name(), name, vm.ipv4(), PORT),
        );
        s.depends_on(&member, &ready);
        previous = cairn_core::NodeRef::address(&member).clone();
    }
    Ok(s.build()?)
}

async fn load(target: Target) -> anyhow::Result<Loaded> {
    let params = Params::from_env()?;
    match target {
        Target::Simulated => {
            let sims = Homelab::start(
                &SimKnobs::from_env()?,
                &VIP.to_string(),
                &format!("{DNS_HOST}.{DOMAIN}"),
                crate::sims::SIM_ADDR_MAP,
            )
            .await?;
            let dialer = Dialer::new(crate::sims::SIM_ADDR_MAP.parse()?, true);
            let trust = TlsTrust::CaFile(sims.ca_file());
            let proxmox = {
                let cfg = cairn_proxmox::ClientConfig::new(
                    sims.proxmox.endpoint.clone(),
                    cairn_proxmox::Auth::Token(sims.proxmox.token.clone()),
                    TlsTrust::Fingerprint(sims.proxmox.fingerprint.clone().unwrap_or_default()),
                );
                ProxmoxProvider::new(PveClient::new(cfg)?)
            };
            let pfsense = PfSenseProvider::new(
                cairn_pfsense::PfSenseClient::new(
                    &sims.pfsense.endpoint,
                    cairn_pfsense::ApiKey::new(sims.pfsense.token.clone()),
                    &TlsTrust::Fingerprint(sims.pfsense.fingerprint.clone().unwrap_or_default()),
                )?,
                Default::default(),
            );
            Ok(Loaded {
                stack: build(&params, &dialer, Some(&trust))?,
                providers: Providers::new()
                    .with(Arc::new(proxmox))
                    .with(Arc::new(pfsense)),
                keep: vec![Box::new(sims)],
            })
        }
        Target::Real => {
            // Only gates need the cluster CA; a read-only drift check runs without it.
            let ca = std::env::var_os(K8S_CA_FILE_ENV).map(|p| TlsTrust::CaFile(p.into()));
            if ca.is_none() {
                tracing::info!(
                    "{K8S_CA_FILE_ENV} is not set: readiness gates will fail if an apply needs them"
                );
            }
            let dialer = Dialer::from_env()?;
            let proxmox =
                ProxmoxProvider::new(PveClient::new(cairn_proxmox::ClientConfig::from_env()?)?);
            let pfsense = PfSenseProvider::from_env()?;
            Ok(Loaded {
                stack: build(&params, &dialer, ca.as_ref())?,
                providers: Providers::new()
                    .with(Arc::new(proxmox))
                    .with(Arc::new(pfsense)),
                keep: Vec::new(),
            })
        }
    }
}
