//! homelab-ha: move the Kubernetes control plane from one master (VM 200) to three behind
//! a pfSense HAProxy VIP, without ever leaving the VIP without a ready backend — the API
//! half (VIP, HAProxy pool, DNS, VM clones) and the node half (kubeadm over SSH) as one plan.
//!
//! The cutover, as a graph:
//! Phase 0 (kubeadm-config gets controlPlaneEndpoint 10.0.20.99:6443 and the VIP and DNS
//! name as certSANs; the master's apiserver certificate is re-issued and its static pod
//! restarted) → gate: the master is ready and presents the VIP → VIP → frontend + pool with
//! only the existing master → gate: the VIP serves `/readyz` → DNS override flips to the VIP
//! → for master-2, then master-3: VM (cloud-init key = cairn's) → gate: SSH answers →
//! control-plane join through the VIP → gates: Node Ready, one more etcd member, its
//! `/readyz` → safe add to the pool → gate: three control-plane nodes Ready → each worker's
//! kubelet.conf moved to the VIP, one at a time, each Ready again before the next →
//! verification gates. Nothing that clients use moves before what it moves to is proven
//! ready; the masters' own kubelet.conf (at their local apiserver) is never touched.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_core::gate::{GateTiming, Probe};
use cairn_core::net::Dialer;
use cairn_core::tls::TlsTrust;
use cairn_core::{NodeRef, Providers, Stack, StackBuilder};
use cairn_node::kinds::control_plane_member::ControlPlaneMember;
use cairn_node::kinds::kubeadm_config::KubeadmConfig;
use cairn_node::provider::{NodeContext, Waits, node_provider_for};
use cairn_node::{Cluster, Cmd, Host, HostKeyTrust, KubeconfigServer, Ssh, SshOptions};
use cairn_pfsense::{
    DnsHostOverride, HaproxyBackend, HaproxyBackendRefs, HaproxyFrontend, HaproxyPoolMember,
    PfSenseProvider, VirtualIp, VirtualIpRefs,
};
use cairn_proxmox::{
    DiskSlot, IpConfig, ProxmoxProvider, PveClient, Template, TemplateRefs, Vm, VmRefs,
};

use super::probes::SshAnswers;
use super::{Loaded, StackDef, Target};
use crate::sims::{Homelab, SSH_IDENTITY_ENV, SSH_KNOWN_HOSTS_ENV, SimKnobs};

/// The stack's definition: it loads itself, because its simulated world is more than its
/// providers' simulators (hosts that follow the simulated VMs, see [`crate::sims`]).
pub fn def() -> StackDef {
    StackDef::custom(
        "homelab-ha",
        &[
            "PROXMOX_VE_ENDPOINT",
            "PROXMOX_VE_API_TOKEN",
            "PFSENSE_URL",
            "PFSENSE_API_KEY",
            SSH_IDENTITY_ENV,
            SSH_KNOWN_HOSTS_ENV,
        ],
        load,
    )
}

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

/// The existing master: (host and node name, address).
pub const MASTER: (&str, Ipv4Addr) = ("k8s-master", Ipv4Addr::new(10, 0, 20, 100));

/// The workers whose kubelet moves to the VIP, in order: (host and node name, address).
pub const WORKERS: [(&str, Ipv4Addr); 4] = [
    ("k8s-worker-1", Ipv4Addr::new(10, 0, 20, 101)),
    ("k8s-worker-2", Ipv4Addr::new(10, 0, 20, 102)),
    ("k8s-worker-3", Ipv4Addr::new(10, 0, 20, 103)),
    ("k8s-worker-4", Ipv4Addr::new(10, 0, 20, 104)),
];

/// The Kubernetes cluster's name in the node provider.
pub const CLUSTER: &str = "homelab";

/// The cloud-init user of the new masters (a sudoer on the cloud image).
pub const CIUSER: &str = "ubuntu";

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
    vm.cloud_init.ciuser = Some(CIUSER.into());
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

/// How the stack reaches hosts and the cluster: the SSH transport with the declared hosts,
/// the cluster (its API through the existing master, credentials read over SSH), and the
/// public key the new VMs get through cloud-init.
pub struct Nodes {
    /// The transport.
    pub ssh: Arc<Ssh>,
    /// The homelab cluster.
    pub cluster: Arc<Cluster>,
    /// cairn's public key (`<identity>.pub`), the new VMs' cloud-init `sshkeys`.
    pub public_key: String,
}

impl Nodes {
    /// The homelab's hosts: the existing master and the workers logged in to as `user`
    /// with keys strictly checked against `known_hosts`; the new masters (VMs the plan
    /// creates, whose keys nobody can know before they boot) as the cloud-init user with
    /// `accept-new`, announced by their SSH gates in the plan.
    pub fn new(
        dialer: &Dialer,
        identity: &Path,
        known_hosts: &Path,
        user: &str,
    ) -> anyhow::Result<Nodes> {
        let pub_path = PathBuf::from(format!("{}.pub", identity.display()));
        let public_key = std::fs::read_to_string(&pub_path)
            .with_context(|| {
                format!(
                    "reading cairn's SSH public key {} (the new VMs' cloud-init key)",
                    pub_path.display()
                )
            })?
            .trim()
            .to_string();
        let strict = HostKeyTrust::KnownHosts(known_hosts.to_path_buf());
        let mut hosts = vec![Host::new(
            MASTER.0,
            MASTER.1.to_string(),
            user,
            strict.clone(),
        )];
        for (name, ip) in WORKERS {
            hosts.push(Host::new(name, ip.to_string(), user, strict.clone()));
        }
        for (name, _, ip) in NEW_MASTERS {
            hosts.push(Host::new(
                name,
                ip.to_string(),
                CIUSER,
                HostKeyTrust::AcceptNew(known_hosts.to_path_buf()),
            ));
        }
        let mut opts = SshOptions::new(identity);
        opts.connect_timeout = Duration::from_secs(5);
        let ssh = Arc::new(Ssh::new(opts, dialer.clone(), hosts)?);
        let mut cluster = Cluster::new(
            CLUSTER,
            format!("{}:{PORT}", MASTER.1),
            MASTER.0,
            ssh.clone(),
            dialer.clone(),
        );
        for name in std::iter::once(MASTER.0)
            .chain(WORKERS.iter().map(|w| w.0))
            .chain(NEW_MASTERS.iter().map(|m| m.0))
        {
            cluster = cluster.node(name, name);
        }
        Ok(Nodes {
            ssh,
            cluster: Arc::new(cluster),
            public_key,
        })
    }

    /// From the environment: the identity (`CAIRN_SSH_IDENTITY`), the known-hosts file
    /// (`CAIRN_SSH_KNOWN_HOSTS`) and the login user of the existing hosts
    /// (`HOMELAB_SSH_USER`, default `root`).
    pub fn from_env(dialer: &Dialer) -> anyhow::Result<Nodes> {
        let var = |name: &str, what: &str| -> anyhow::Result<PathBuf> {
            std::env::var_os(name)
                .map(PathBuf::from)
                .with_context(|| format!("{name} is not set: homelab-ha needs {what}"))
        };
        let identity = var(
            SSH_IDENTITY_ENV,
            "the private key cairn logs in to hosts with",
        )?;
        let known = var(
            SSH_KNOWN_HOSTS_ENV,
            "the known-hosts file the hosts' keys are checked against",
        )?;
        let user = std::env::var("HOMELAB_SSH_USER").unwrap_or_else(|_| "root".into());
        Self::new(dialer, &identity, &known, &user)
    }

    /// The `node` provider over these hosts and the cluster; its steps wait as long as the
    /// stack's gates.
    pub fn provider(&self, p: &Params) -> cairn_node::NodeProvider {
        let ctx = NodeContext::new(self.ssh.clone())
            .cluster(self.cluster.clone())
            .waits(Waits {
                interval: p.gate_interval,
                timeout: p.gate_timeout,
            });
        node_provider_for(ctx)
    }
}

/// Gate: `/readyz` at `address` answers 200 and the certificate names `san`.
struct PresentsSan {
    cluster: Arc<Cluster>,
    address: String,
    san: String,
}

#[async_trait::async_trait]
impl Probe for PresentsSan {
    fn describe(&self) -> String {
        format!(
            "GET https://{}/readyz answers 200 with cluster {}'s CA and {} in the certificate's SANs",
            self.address,
            self.cluster.name(),
            self.san
        )
    }

    async fn check(&self) -> Result<(), String> {
        let sans = self.cluster.readyz(&self.address).await?;
        if sans.iter().any(|s| s.eq_ignore_ascii_case(&self.san)) {
            Ok(())
        } else {
            Err(format!(
                "the apiserver at {} does not present {} yet: its SANs are [{}]",
                self.address,
                self.san,
                sans.join(", ")
            ))
        }
    }
}

/// Gate: at least `count` control-plane nodes are Ready.
struct ControlPlaneReady {
    cluster: Arc<Cluster>,
    count: usize,
}

#[async_trait::async_trait]
impl Probe for ControlPlaneReady {
    fn describe(&self) -> String {
        format!(
            "cluster {} has {} Ready control-plane nodes",
            self.cluster.name(),
            self.count
        )
    }

    async fn check(&self) -> Result<(), String> {
        let nodes = self.cluster.nodes().await.map_err(|e| e.to_string())?;
        let ready: Vec<&str> = nodes
            .iter()
            .filter(|n| n.control_plane && n.ready)
            .map(|n| n.name.as_str())
            .collect();
        if ready.len() >= self.count {
            Ok(())
        } else {
            Err(format!(
                "{} Ready control-plane nodes [{}], want {}",
                ready.len(),
                ready.join(", "),
                self.count
            ))
        }
    }
}

/// Gate: every listed host's kubelet.conf points at `server` (read over SSH).
struct KubeletsAt {
    ssh: Arc<Ssh>,
    hosts: Vec<String>,
    server: String,
}

#[async_trait::async_trait]
impl Probe for KubeletsAt {
    fn describe(&self) -> String {
        format!(
            "/etc/kubernetes/kubelet.conf on {} points at {}",
            self.hosts.join(", "),
            self.server
        )
    }

    async fn check(&self) -> Result<(), String> {
        let mut wrong = Vec::new();
        for h in &self.hosts {
            let cmd = Cmd::root("cat").arg(cairn_node::kinds::kubeconfig_server::KUBELET_CONF);
            let out = self.ssh.run(h, &cmd).await.map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout);
            let found =
                cairn_node::kubeconfig::find_server(&text).map_err(|e| format!("{h}: {e}"))?;
            if found.server != self.server {
                wrong.push(format!("{h}: {}", found.server));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("not at {}: {}", self.server, wrong.join(", ")))
        }
    }
}

/// Declares the stack over `nodes` (the hosts, the cluster and cairn's public key).
pub fn build(p: &Params, nodes: &Nodes) -> anyhow::Result<Stack> {
    let mut s = StackBuilder::new("homelab-ha");
    let timing = GateTiming {
        interval: p.gate_interval,
        timeout: p.gate_timeout,
    };
    let cluster = &nodes.cluster;
    let vip_endpoint = format!("{VIP}:{PORT}");

    // Phase 0: the cluster learns its endpoint and SANs; the master's certificate is
    // re-issued and its apiserver restarted; gate: ready again, presenting the VIP.
    let kubeadm = s.add(
        "kubeadm",
        KubeadmConfig::new(
            CLUSTER,
            vip_endpoint.clone(),
            [VIP.to_string(), format!("{DNS_HOST}.{DOMAIN}")],
        ),
    );
    let phase0 = s.gate(
        "k8s-master-presents-vip",
        PresentsSan {
            cluster: cluster.clone(),
            address: format!("{}:{PORT}", MASTER.1),
            san: VIP.to_string(),
        },
        timing,
    );
    s.depends_on(&phase0, &kubeadm);

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
        HaproxyPoolMember::new(pool.name(), MASTER.0, MASTER.1, PORT),
    );
    s.depends_on(&vip, &phase0);

    // Gate: the VIP serves /readyz through a ready backend, with the VIP in the SANs.
    let vip_ready = s.gate(
        "vip-serves",
        cluster.apiserver_ready(vip_endpoint.clone()),
        timing,
    );
    s.depends_on(&vip_ready, &frontend)
        .depends_on(&vip_ready, &first)
        .depends_on(&vip_ready, &phase0);

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

    // Each new master: VM → SSH → join through the VIP → Ready, etcd, /readyz → safe add
    // to the pool → the next master.
    let mut previous: cairn_core::Address = dns.address().clone();
    for (i, (name, vmid, ip)) in NEW_MASTERS.into_iter().enumerate() {
        let mut vm = master_vm(
            vmid,
            name,
            template.template_vmid(),
            p.master_memory_gib,
            ip,
        );
        vm.cloud_init.nameserver = Some("10.0.20.1".into());
        vm.cloud_init.sshkeys = vec![nodes.public_key.clone()];
        vm.tags = vec!["k8s".into(), "master".into()];
        vm.description = "Kubernetes control plane".into();
        let vm = s.add(name, vm);
        s.depends_on(&vm, &previous);
        let ssh = s.gate(
            &format!("{name}-ssh"),
            SshAnswers {
                ssh: nodes.ssh.clone(),
                host: name.into(),
            },
            timing,
        );
        s.depends_on(&ssh, &vm);
        let join = s.add(name, ControlPlaneMember::new(CLUSTER, name));
        s.depends_on(&join, &ssh).depends_on(&join, &vip_ready);
        let node_ready = s.gate(
            &format!("{name}-node-ready"),
            cluster.node_ready(name),
            timing,
        );
        let etcd = s.gate(
            &format!("{name}-etcd"),
            cluster.etcd_members_ready(i + 2),
            timing,
        );
        let ready = s.gate(
            &format!("{name}-ready"),
            cluster.apiserver_ready(format!("{ip}:{PORT}")),
            timing,
        );
        for g in [&node_ready, &etcd, &ready] {
            s.depends_on(g, &join);
        }
        let member = s.add(
            &format!("apiserver_nodes/{name}"),
            HaproxyPoolMember::new(pool.name(), name, vm.ipv4(), PORT),
        );
        s.depends_on(&member, &node_ready)
            .depends_on(&member, &etcd)
            .depends_on(&member, &ready);
        previous = member.address().clone();
    }

    // All three masters are ready behind the VIP: only now do the workers move, one at a
    // time, each Ready again before the next (the step waits for it).
    let three = s.gate(
        "control-plane-ready",
        ControlPlaneReady {
            cluster: cluster.clone(),
            count: 1 + NEW_MASTERS.len(),
        },
        timing,
    );
    s.depends_on(&three, &previous);
    let mut previous: cairn_core::Address = three.address().clone();
    for (name, _) in WORKERS {
        let flip = s.add(
            name,
            KubeconfigServer::kubelet(name, format!("https://{VIP}:{PORT}")),
        );
        s.depends_on(&flip, &previous);
        previous = flip.address().clone();
    }

    // Verification, as the operators did by hand.
    let kubelets = s.gate(
        "verify-kubelets-at-vip",
        KubeletsAt {
            ssh: nodes.ssh.clone(),
            hosts: WORKERS.iter().map(|w| w.0.to_string()).collect(),
            server: format!("https://{VIP}:{PORT}"),
        },
        timing,
    );
    let cp = s.gate(
        "verify-control-plane-nodes",
        ControlPlaneReady {
            cluster: cluster.clone(),
            count: 1 + NEW_MASTERS.len(),
        },
        timing,
    );
    let etcd = s.gate(
        "verify-etcd-members",
        cluster.etcd_members_ready(1 + NEW_MASTERS.len()),
        timing,
    );
    for g in [&kubelets, &cp, &etcd] {
        s.depends_on(g, &previous);
    }
    Ok(s.build()?)
}

async fn load(target: Target) -> anyhow::Result<Loaded> {
    let params = Params::from_env()?;
    match target {
        Target::Simulated => {
            let sims = Homelab::start(&SimKnobs::from_env()?, crate::sims::SIM_ADDR_MAP).await?;
            let dialer = sims.dialer()?;
            let nodes = Nodes::new(&dialer, &sims.client_key(), &sims.known_hosts(), "root")?;
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
                stack: build(&params, &nodes)?,
                providers: Providers::new()
                    .with(Arc::new(proxmox))
                    .with(Arc::new(pfsense))
                    .with(Arc::new(nodes.provider(&params))),
                keep: vec![Box::new(sims)],
                rotation: None,
            })
        }
        Target::Real => {
            let dialer = Dialer::from_env()?;
            let nodes = Nodes::from_env(&dialer)?;
            let proxmox =
                ProxmoxProvider::new(PveClient::new(cairn_proxmox::ClientConfig::from_env()?)?);
            let pfsense = PfSenseProvider::from_env()?;
            Ok(Loaded {
                stack: build(&params, &nodes)?,
                providers: Providers::new()
                    .with(Arc::new(proxmox))
                    .with(Arc::new(pfsense))
                    .with(Arc::new(nodes.provider(&params))),
                keep: Vec::new(),
                rotation: None,
            })
        }
    }
}
