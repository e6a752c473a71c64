//! The `sim` command: a persistent local world of simulators on loopback, served until
//! Ctrl-C or SIGTERM. Its first stdout line is one JSON object describing it, with an `env`
//! map that points the normal CLI (and other tools) at it.

use std::any::Any;
use std::collections::BTreeMap;

use super::provider::BoxFuture;
use super::stack_def::StackDef;

/// A running simulated world.
pub struct World {
    /// What the first line says, per simulator (endpoint, token, fingerprint, …); `env` is
    /// added to it.
    pub info: serde_json::Map<String, serde_json::Value>,
    /// The environment that points the CLI at this world.
    pub env: BTreeMap<String, String>,
    /// The simulators: they stop when this is dropped.
    pub keep: Vec<Box<dyn Any + Send>>,
}

/// Builds the world `sim` serves (for worlds the providers' own simulators cannot make
/// alone, e.g. hosts that follow simulated VMs).
pub type WorldFn = fn() -> BoxFuture<'static, anyhow::Result<World>>;

/// One simulator per provider the stacks name (first come: its world seeds it).
pub(crate) async fn providers_world(stacks: &[StackDef]) -> anyhow::Result<World> {
    let mut world = World {
        info: serde_json::Map::new(),
        env: BTreeMap::new(),
        keep: Vec::new(),
    };
    for p in stacks.iter().flat_map(|s| s.providers()) {
        if world.info.contains_key(p.name()) {
            continue;
        }
        let sim = p.simulate().await?;
        world.info.insert(p.name().to_string(), sim.describe);
        world.env.extend(sim.env);
        world.keep.push(sim.keep);
    }
    anyhow::ensure!(
        !world.info.is_empty(),
        "none of the stacks names a provider with a simulator to serve"
    );
    // Everything of this world is on loopback: refuse any other address.
    world
        .env
        .insert(cairn_core::net::LOOPBACK_ONLY_ENV.into(), "1".into());
    Ok(world)
}

/// Prints the world's first line, then serves until Ctrl-C or SIGTERM.
pub(crate) async fn serve(world: World) -> anyhow::Result<()> {
    let mut info = world.info;
    info.insert("env".into(), serde_json::to_value(&world.env)?);
    println!("{}", serde_json::Value::Object(info));
    eprintln!(
        "cairn: simulators serving on loopback until Ctrl-C; the first stdout line holds their endpoints and the environment for `{0} diff`/`apply`/`drift`",
        super::bin_name()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    drop(world.keep);
    Ok(())
}
