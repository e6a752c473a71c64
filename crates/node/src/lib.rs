//! cairn's node layer: steps that happen on hosts rather than through a cloud API, modelled
//! as resources that observe, diff and converge over SSH.
//!
//! - [`ssh`]: the transport — the system `ssh` through the `openssh` crate, one multiplexed
//!   master per host, strict host keys (known-hosts file or declared SHA-256 fingerprint),
//!   bounded sessions, timeouts, `sudo -n`, arguments passed as arguments, addresses through
//!   core's dialer (address map, loopback-only switch).
//! - [`kinds`]: `node_kubeconfig_server` (a kubeconfig's `server`, edited as one YAML field
//!   with a backup, then kubelet restarted) and `node_apiserver_certificate` (the
//!   apiserver certificate's SANs, read-only).
//! - [`node_provider`]: the kinds registered with core's provider kit as the provider `node`.
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
pub mod provider;
pub mod ssh;
mod wait;

pub use cluster::{ApiserverReady, Cluster, EtcdMembersReady, NodeReady};
pub use error::NodeError;
pub use kinds::apiserver_cert::{
    ApiserverCertificate, ApiserverCertificateObserved, ApiserverCertificates,
};
pub use kinds::kubeconfig_server::{
    KubeconfigServer, KubeconfigServerObserved, KubeconfigServers, KubeconfigStep,
};
pub use provider::{NodeContext, NodeProvider, node_provider};
pub use ssh::{Cmd, Host, HostKeyTrust, Ssh, SshOptions, SshStats};
