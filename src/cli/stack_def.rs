//! What the CLI runs: a stack definition (its name, the credentials that mean "real APIs",
//! and how its graph and providers are made for a target).

use std::any::Any;
use std::sync::Arc;

use cairn_core::{Providers, Stack};

use super::provider::{BoxFuture, ProviderSetup};

/// Where a stack's providers point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The APIs named by the credentials in the environment (real ones, or a `sim` world).
    Real,
    /// Embedded simulators seeded with the stack's "before" world, for this process only.
    Simulated,
}

/// A stack ready to plan: its graph, its providers, and whatever must live as long
/// (embedded simulators).
pub struct Loaded {
    /// The stack.
    pub stack: Stack,
    /// Its providers.
    pub providers: Providers,
    /// Kept alive while the stack is used (simulator handles, temp files).
    pub keep: Vec<Box<dyn Any + Send>>,
    /// How the stack's nodes are rotated (`rotate`), if it has any.
    pub rotation: Option<Arc<dyn cairn_core::rotation::Rotation>>,
}

/// Loads a stack for a target: its graph and providers (and simulators when simulated).
pub type LoadFn = Arc<dyn Fn(Target) -> BoxFuture<'static, anyhow::Result<Loaded>> + Send + Sync>;

/// A stack the CLI can run (`--stack NAME`).
#[derive(Clone)]
pub struct StackDef {
    name: String,
    credentials: Vec<String>,
    build: Option<Arc<dyn Fn() -> anyhow::Result<Stack> + Send + Sync>>,
    providers: Vec<Arc<dyn ProviderSetup>>,
    load: Option<LoadFn>,
}

impl StackDef {
    /// A stack named `name` whose graph `build` declares, on the providers added with
    /// [`StackDef::on`]: with all their credentials set it targets the APIs they name,
    /// otherwise each provider's embedded simulator.
    pub fn new<E>(
        name: impl Into<String>,
        build: impl Fn() -> Result<Stack, E> + Send + Sync + 'static,
    ) -> StackDef
    where
        E: Into<anyhow::Error>,
    {
        StackDef {
            name: name.into(),
            credentials: Vec::new(),
            build: Some(Arc::new(move || build().map_err(Into::into))),
            providers: Vec::new(),
            load: None,
        }
    }

    /// A stack that makes its graph, providers and simulators itself (`load`), targeting
    /// the real APIs when every one of `credentials` is set.
    pub fn custom<F>(
        name: impl Into<String>,
        credentials: &[&str],
        load: impl Fn(Target) -> F + Send + Sync + 'static,
    ) -> StackDef
    where
        F: Future<Output = anyhow::Result<Loaded>> + Send + 'static,
    {
        StackDef {
            name: name.into(),
            credentials: credentials.iter().map(|c| c.to_string()).collect(),
            build: None,
            providers: Vec::new(),
            load: Some(Arc::new(move |t| Box::pin(load(t)))),
        }
    }

    /// Adds a provider the stack runs on; its credentials join the stack's.
    pub fn on(mut self, provider: impl ProviderSetup + 'static) -> StackDef {
        for c in provider.credentials() {
            if !self.credentials.iter().any(|have| have == c) {
                self.credentials.push(c.to_string());
            }
        }
        self.providers.push(Arc::new(provider));
        self
    }

    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The environment variables that, all set, mean "use the APIs they name".
    pub fn credentials(&self) -> &[String] {
        &self.credentials
    }

    /// The providers added with [`StackDef::on`] (what `sim` serves for this stack).
    pub fn providers(&self) -> &[Arc<dyn ProviderSetup>] {
        &self.providers
    }

    /// Builds the stack and its providers for `target` (starting embedded simulators for
    /// [`Target::Simulated`]).
    pub async fn load(&self, target: Target) -> anyhow::Result<Loaded> {
        if let Some(load) = &self.load {
            return load(target).await;
        }
        let build = self.build.as_ref().expect("a StackDef has build or load");
        let stack = build()?;
        let mut providers = Providers::new();
        let mut keep: Vec<Box<dyn Any + Send>> = Vec::new();
        for p in &self.providers {
            match target {
                Target::Real => providers = providers.with(p.real()?),
                Target::Simulated => {
                    let sim = p.simulate().await?;
                    providers = providers.with(sim.provider);
                    keep.push(sim.keep);
                }
            }
        }
        Ok(Loaded {
            stack,
            providers,
            keep,
            rotation: None,
        })
    }
}
