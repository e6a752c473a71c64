//! The `node` provider: dispatches the engine's calls to the typed kinds. Thin on purpose —
//! it is replaced by core's provider kit registry once that lands.

use async_trait::async_trait;
use cairn_core::{
    Change, Declared, Diagnostic, FieldError, ObserveRequest, Observed, Provider, ProviderError,
    Resource,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::NodeError;
use crate::kinds::apiserver_cert::{self, ApiserverCertificate};
use crate::kinds::kubeconfig_server::{self, KubeconfigServer, KubeconfigServerObserved};
use crate::kinds::{Found, split_key};
use crate::ssh::Ssh;

/// Steps on hosts over SSH as a cairn provider.
#[derive(Debug)]
pub struct NodeProvider {
    ssh: Ssh,
}

const KINDS: &[&str] = &[KubeconfigServer::KIND, ApiserverCertificate::KIND];

impl NodeProvider {
    /// A provider over `ssh` (which holds the declared hosts).
    pub fn new(ssh: Ssh) -> Self {
        NodeProvider { ssh }
    }

    /// The transport (for its counters).
    pub fn ssh(&self) -> &Ssh {
        &self.ssh
    }
}

fn perr(op: impl Into<String>, e: NodeError) -> ProviderError {
    let mut p = ProviderError::new(op, e.to_string());
    p.retryable = e.is_connection();
    p
}

fn decode<T: DeserializeOwned>(op: &str, v: Option<&Value>) -> Result<T, ProviderError> {
    let v = v.ok_or_else(|| ProviderError::new(op, "no value"))?;
    T::deserialize(v).map_err(|e| ProviderError::new(op, format!("cannot read the value: {e}")))
}

fn encode<T: Serialize>(op: &str, v: &T) -> Result<Value, ProviderError> {
    serde_json::to_value(v).map_err(|e| ProviderError::new(op, e.to_string()))
}

fn observed<O: Serialize>(op: &str, found: Vec<Found<O>>) -> Result<Vec<Observed>, ProviderError> {
    found
        .into_iter()
        .map(|f| {
            Ok(Observed {
                value: encode(op, &f.value)?,
                key: f.key,
                marker: f.marker,
                uses: Vec::new(),
            })
        })
        .collect()
}

#[async_trait]
impl Provider for NodeProvider {
    fn name(&self) -> &str {
        "node"
    }

    fn kinds(&self) -> &[&'static str] {
        KINDS
    }

    async fn observe(&self, req: ObserveRequest<'_>) -> Result<Vec<Observed>, ProviderError> {
        let op = format!("observe {}", req.kind);
        match req.kind {
            KubeconfigServer::KIND => observed(
                &op,
                kubeconfig_server::observe(&self.ssh, req.keys)
                    .await
                    .map_err(|e| perr(&op, e))?,
            ),
            ApiserverCertificate::KIND => observed(
                &op,
                apiserver_cert::observe(&self.ssh, req.keys)
                    .await
                    .map_err(|e| perr(&op, e))?,
            ),
            other => Err(ProviderError::new(op, format!("node has no kind {other}"))),
        }
    }

    async fn create(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        let op = format!("create {}", change.address);
        match change.kind {
            KubeconfigServer::KIND => {
                let spec: KubeconfigServer = decode(&op, change.desired)?;
                Err(perr(op, kubeconfig_server::create_refused(&spec)))
            }
            other => Err(ProviderError::new(op, format!("{other} cannot be created"))),
        }
    }

    async fn update(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        let op = format!("update {}", change.address);
        match change.kind {
            KubeconfigServer::KIND => {
                let spec: KubeconfigServer = decode(&op, change.desired)?;
                let prior: KubeconfigServerObserved =
                    decode(&op, change.prior.map(|p| &p.value))?;
                let steps = kubeconfig_server::steps(Some(&prior), Some(&spec));
                let after = kubeconfig_server::update(&self.ssh, &spec, change.marker, &steps)
                    .await
                    .map_err(|e| perr(&op, e))?;
                encode(&op, &after)
            }
            other => Err(ProviderError::new(op, format!("{other} cannot be updated"))),
        }
    }

    async fn delete(&self, change: Change<'_>) -> Result<(), ProviderError> {
        Err(ProviderError::new(
            format!("delete {}", change.address),
            "files on hosts are never deleted by cairn",
        ))
    }

    fn rollout_steps(
        &self,
        kind: &str,
        before: Option<&Observed>,
        after: Option<&Value>,
    ) -> Vec<String> {
        if kind != KubeconfigServer::KIND {
            return Vec::new();
        }
        let before: Option<KubeconfigServerObserved> =
            before.and_then(|o| serde_json::from_value(o.value.clone()).ok());
        let after: Option<KubeconfigServer> =
            after.and_then(|v| serde_json::from_value(v.clone()).ok());
        kubeconfig_server::steps(before.as_ref(), after.as_ref())
            .iter()
            .map(ToString::to_string)
            .collect()
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

