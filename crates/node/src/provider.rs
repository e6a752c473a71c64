//! The `node` provider, assembled with core's provider kit: the context every kind shares
//! (the SSH transport with its declared hosts), its error mapping and plan-time validation,
//! and the registration of the kinds.

use cairn_core::kit::{Context, KitProvider, ProviderBuilder};
use cairn_core::{Declared, Diagnostic, FieldError, ProviderError};

use crate::error::NodeError;
use crate::kinds::apiserver_cert::ApiserverCertificates;
use crate::kinds::kubeconfig_server::KubeconfigServers;
use crate::kinds::split_key;
use crate::ssh::Ssh;

/// Steps on hosts over SSH as a cairn provider.
pub type NodeProvider = KitProvider<NodeContext>;

/// The provider named `node` over `ssh` (which holds the declared hosts).
pub fn node_provider(ssh: Ssh) -> NodeProvider {
    ProviderBuilder::new("node", NodeContext { ssh })
        .kind(KubeconfigServers)
        .kind(ApiserverCertificates)
        .build()
}

/// What the node kinds share: the transport and its declared hosts.
#[derive(Debug)]
pub struct NodeContext {
    ssh: Ssh,
}

impl NodeContext {
    /// The transport (for its counters, or to run a command directly).
    pub fn ssh(&self) -> &Ssh {
        &self.ssh
    }
}

impl Context for NodeContext {
    type Error = NodeError;

    fn provider_error(&self, operation: String, error: NodeError) -> ProviderError {
        let mut p = ProviderError::new(operation, error.to_string());
        p.retryable = error.is_connection();
        p
    }

    /// Every resource must name a declared host: checked before anything is observed.
    fn validate(&self, declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        declared
            .iter()
            .filter_map(|d| {
                let (host, _) = split_key(d.key)?;
                (!self.ssh.is_declared(host)).then(|| Diagnostic {
                    address: d.address.clone(),
                    error: FieldError::new(
                        "host",
                        format!("host {host:?} is not declared in the node provider's hosts"),
                    ),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::SshOptions;

    #[test]
    fn every_kinds_schema_paths_exist() {
        let ssh = Ssh::new(SshOptions::new("/k"), Default::default(), vec![]).unwrap();
        let p = node_provider(ssh);
        assert_eq!(
            cairn_core::Provider::kinds(&p),
            &["node_kubeconfig_server", "node_apiserver_certificate"]
        );
        assert_eq!(p.check_schemas(), Vec::<String>::new());
    }
}
