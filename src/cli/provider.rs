//! How the CLI reaches a provider: the real API from the environment, or an embedded
//! simulator seeded with a stack's "before" world. [`Hetzner`] is the one cairn ships;
//! [`ProviderSetup`] is the trait for others.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cairn_core::Provider;

/// A boxed, sendable future (what [`ProviderSetup`] and load functions return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A provider pointed at a simulator started for it.
pub struct Simulated {
    /// The provider, configured for the simulator.
    pub provider: Arc<dyn Provider>,
    /// The environment that points the CLI (and other clients) at the simulator.
    pub env: BTreeMap<String, String>,
    /// Endpoint, token and fingerprint as JSON (the `sim` command's first line).
    pub describe: serde_json::Value,
    /// The simulator: it stops when this is dropped.
    pub keep: Box<dyn Any + Send>,
}

/// A provider a stack runs on, as the CLI needs it.
pub trait ProviderSetup: Send + Sync {
    /// The provider's name (`hetzner`), also its key in the `sim` command's JSON.
    fn name(&self) -> &str;
    /// The environment variables that, all set, mean "use the API they name".
    fn credentials(&self) -> &[&str];
    /// The provider for the API named in the environment.
    fn real(&self) -> anyhow::Result<Arc<dyn Provider>>;
    /// Starts the provider's simulator on loopback, seeded with this setup's world.
    fn simulate(&self) -> BoxFuture<'_, anyhow::Result<Simulated>>;
}

/// Hetzner Cloud: the API named by `HCLOUD_TOKEN` (and `HCLOUD_ENDPOINT`), or the
/// simulator (feature `hetzner-sim`), empty or seeded with a world.
#[cfg(feature = "hetzner")]
#[derive(Debug, Clone, Default)]
pub struct Hetzner {
    /// The simulator's initial state (the `GET /_sim/state` format); `None`: an empty project.
    pub world: Option<serde_json::Value>,
}

#[cfg(feature = "hetzner")]
impl Hetzner {
    /// Hetzner Cloud; its simulator starts as an empty project.
    pub fn new() -> Hetzner {
        Hetzner::default()
    }

    /// Hetzner Cloud; its simulator starts with `world` (simulator state JSON, e.g. a
    /// project as it was made by hand before cairn managed it).
    pub fn seeded(world: serde_json::Value) -> Hetzner {
        Hetzner { world: Some(world) }
    }
}

#[cfg(feature = "hetzner")]
impl ProviderSetup for Hetzner {
    fn name(&self) -> &str {
        "hetzner"
    }

    fn credentials(&self) -> &[&str] {
        &["HCLOUD_TOKEN"]
    }

    fn real(&self) -> anyhow::Result<Arc<dyn Provider>> {
        use anyhow::Context;
        let p = cairn_hetzner::HetznerProvider::from_env()
            .context("configuring the Hetzner Cloud client from HCLOUD_TOKEN / HCLOUD_ENDPOINT")?;
        Ok(Arc::new(p))
    }

    #[cfg(feature = "hetzner-sim")]
    fn simulate(&self) -> BoxFuture<'_, anyhow::Result<Simulated>> {
        Box::pin(async move {
            use anyhow::Context;
            use cairn_hetzner::client::{ClientConfig, Token};
            let handle = cairn_hetzner_sim::HetznerSim::start(cairn_hetzner_sim::SimConfig {
                fixture: self.world.clone(),
                ..Default::default()
            })
            .await
            .context("starting the Hetzner simulator")?;
            let provider = cairn_hetzner::HetznerProvider::new(ClientConfig::new(
                &handle.endpoint,
                Token::new(&handle.token),
            ))?;
            Ok(Simulated {
                provider: Arc::new(provider),
                env: handle.env(),
                describe: handle.describe(),
                keep: Box::new(handle),
            })
        })
    }

    #[cfg(not(feature = "hetzner-sim"))]
    fn simulate(&self) -> BoxFuture<'_, anyhow::Result<Simulated>> {
        Box::pin(async {
            anyhow::bail!(
                "no Hetzner Cloud credentials (HCLOUD_TOKEN) and this binary has no Hetzner simulator: build it with cairn's feature `hetzner-sim`"
            )
        })
    }
}
