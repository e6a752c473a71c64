//! cairn's node layer: steps that happen on hosts rather than through a cloud API, modelled
//! as resources that observe, diff and converge over SSH.
//!
//! - [`ssh`]: the transport — the system `ssh` through the `openssh` crate, one multiplexed
//!   master per host, strict host keys (known-hosts file or declared SHA-256 fingerprint),
//!   bounded sessions, timeouts, `sudo -n`, arguments passed as arguments, addresses through
//!   core's dialer (address map, loopback-only switch).
//! - [`cluster`]: Kubernetes API access to a declared [`Cluster`] (`kube` + `k8s-openapi` over
//!   core's dialer, the cluster CA with the declared address as server name, admin
//!   credentials read over SSH) and its gates: [`NodeReady`], [`EtcdMembersReady`],
//!   [`ApiserverReady`].
//! - [`kinds`]: `node_kubeconfig_server` (a kubeconfig's `server`, edited as one YAML field
//!   with a backup, then kubelet restarted and, on a cluster node, Ready awaited),
//!   `node_apiserver_certificate` (the apiserver certificate's SANs, read-only),
//!   `node_kubeadm_config` (controlPlaneEndpoint and certSANs, Phase 0 of a VIP cutover) and
//!   `node_control_plane_member` (a `kubeadm join --control-plane`); `node_k3s_server` and
//!   `node_k3s_agent` (k3s installed with its install script at a pinned version, its flags
//!   and join token, adopted as found and checked for drift; a version change is a rolling
//!   upgrade with cordon and drain, a delete leaves the cluster cleanly).
//! - [`cluster::ops`]: cordon, uncordon, drain (eviction API, PodDisruptionBudgets respected,
//!   a typed timeout), deleting a Node, k3s etcd members; [`leave`]: a k3s node leaving its
//!   cluster and coming back; [`rotation`]: [`rotation::K3sRotation`], a k3s cluster's
//!   nodes as core's `Rotation`.
//! - [`node_provider_for`]: the kinds registered with core's provider kit as the provider
//!   `node`, over a [`NodeContext`] holding the hosts and clusters.
//!
//! ```ignore
//! let ssh = Arc::new(Ssh::new(SshOptions::new(key), dialer.clone(), hosts)?);
//! let cluster = Arc::new(
//!     Cluster::new("homelab", "10.0.20.100:6443", "k8s-master", ssh.clone(), dialer)
//!         .node("k8s-worker-1", "k8s-worker-1"),
//! );
//! let provider = node_provider_for(NodeContext::new(ssh).cluster(cluster.clone()));
//! let phase0 = s.add("phase0", KubeadmConfig::new("homelab", "10.0.20.99:6443", ["10.0.20.99"]));
//! let vip = s.gate("vip-ready", cluster.apiserver_ready("10.0.20.99:6443"), timing);
//! s.depends_on(&vip, &phase0);
//! ```
//!
//! Its simulator (hosts as real sshd processes, a simulated cluster) is the separate crate
//! `cairn-node-sim`, which never imports this one.

#![warn(missing_docs)]

pub mod cluster;
pub mod error;
pub mod files;
pub mod kinds;
pub mod kubeadm;
pub mod kubeconfig;
pub mod leave;
pub mod provider;
pub mod rotation;
pub mod ssh;
mod wait;

pub use cluster::{ApiserverReady, Cluster, EtcdMembersReady, NodeReady};
pub use error::NodeError;
pub use kinds::apiserver_cert::{
    ApiserverCertificate, ApiserverCertificateObserved, ApiserverCertificates,
};
pub use kinds::control_plane_member::{
    ControlPlaneMember, ControlPlaneMemberObserved, ControlPlaneMembers, MemberStep,
};
pub use kinds::k3s::{K3sStep, Secret};
pub use kinds::k3s_agent::{K3sAgent, K3sAgentObserved, K3sAgents};
pub use kinds::k3s_server::{K3sServer, K3sServerObserved, K3sServers};
pub use kinds::kubeadm_config::{
    KubeadmConfig, KubeadmConfigObserved, KubeadmConfigStep, KubeadmConfigs,
};
pub use kinds::kubeconfig_server::{
    KubeconfigServer, KubeconfigServerObserved, KubeconfigServers, KubeconfigStep,
};
pub use provider::{NodeContext, NodeProvider, Waits, node_provider, node_provider_for};
pub use ssh::{Cmd, Host, HostKeyTrust, Ssh, SshOptions, SshStats};
