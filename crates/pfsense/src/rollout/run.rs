//! Executes [`PoolStep`]s one by one against pfSense, recording each executed step in the
//! context's journal. Every write looks the pool and the server up by name first (IDs are
//! array indexes that shift).

use crate::client::Subsystem;
use crate::context::{PfCtx, PfError};
use crate::kinds::backend::{self, ServerBody};
use crate::kinds::values::ServerStatus;

use super::runtime::{Runtime, RuntimeState};
use super::{PoolServer, PoolStep};

/// The server endpoint of the REST API.
const SERVER: &str = "/services/haproxy/backend/server";

/// A rollout of one pool's servers, for the change of `address`.
pub struct Rollout<'a> {
    ctx: &'a PfCtx,
    pool: &'a str,
    address: &'a str,
}

impl<'a> Rollout<'a> {
    /// A rollout on `pool` for the change of the resource at `address`.
    pub fn new(ctx: &'a PfCtx, pool: &'a str, address: &'a str) -> Self {
        Rollout { ctx, pool, address }
    }

    fn runtime(&self) -> Runtime<'a> {
        Runtime::new(&self.ctx.client, &self.ctx.opts)
    }

    /// Runs every step in order; stops at the first that fails. `CreatePool` is the
    /// backend's own write and is refused here.
    pub async fn run(&self, steps: &[PoolStep]) -> Result<(), PfError> {
        for (i, step) in steps.iter().enumerate() {
            self.step(step, &steps[i + 1..]).await?;
        }
        Ok(())
    }

    /// Runs one step (`later`: the steps after it, named when a gate fails) and records it.
    pub async fn step(&self, step: &PoolStep, later: &[PoolStep]) -> Result<(), PfError> {
        let (ctx, pool) = (self.ctx, self.pool);
        let runtime = self.runtime();
        match step {
            PoolStep::CreatePool { .. } => {
                return Err(PfError::failed(
                    "creating a pool is the backend's own write, not a server step",
                ));
            }
            PoolStep::Move {
                server, serving, ..
            } => {
                if *serving {
                    let _ = runtime.set(pool, server, RuntimeState::Drain).await;
                }
                runtime.await_drained(pool, server).await;
                self.remove(server).await?;
                ctx.client.apply(Subsystem::Haproxy).await?;
            }
            PoolStep::AddDisabled { server, .. } => {
                self.add(server, ServerStatus::Disabled).await?;
            }
            PoolStep::Add { server, .. } => self.add(server, server.status).await?,
            PoolStep::KeepDisabled { server, now, .. } => {
                if step.writes() {
                    let status = match now.configured() {
                        ServerStatus::Inactive => ServerStatus::Disabled,
                        other => other,
                    };
                    self.patch(server, status).await?;
                }
            }
            PoolStep::Edit { server, .. } | PoolStep::SetStatus { server } => {
                self.patch(server, server.status).await?;
            }
            PoolStep::Apply => ctx.client.apply(Subsystem::Haproxy).await?,
            PoolStep::AwaitHealthy { server } => {
                runtime.set(pool, server, RuntimeState::Drain).await?;
                if !runtime.await_healthy(pool, server).await {
                    let _ = runtime.set(pool, server, RuntimeState::Maint).await;
                    let untried: Vec<&str> = later
                        .iter()
                        .filter_map(|s| match s {
                            PoolStep::AwaitHealthy { server } => Some(server.as_str()),
                            _ => None,
                        })
                        .collect();
                    let untried = if untried.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} not tried, also disabled)", untried.join(", "))
                    };
                    return Err(PfError::failed(format!(
                        "server {server} of pool {pool} never passed its health check within {:?}; it stays disabled (not taking traffic){untried} and no server was removed; check its health endpoint and apply again",
                        ctx.opts.server_check_timeout
                    )));
                }
            }
            PoolStep::Activate { server } => {
                runtime.set(pool, &server.name, RuntimeState::Ready).await?;
                self.patch(server, server.status).await?;
                ctx.client.apply(Subsystem::Haproxy).await?;
            }
            PoolStep::Drain { server } => {
                if let Err(e) = runtime.set(pool, server, RuntimeState::Drain).await {
                    tracing::warn!("could not drain {pool}/{server}: {e}");
                }
            }
            PoolStep::AwaitDrained { server } => runtime.await_drained(pool, server).await,
            PoolStep::Remove { server } => self.remove(server).await?,
        }
        ctx.record_step(self.address, &step.to_string());
        Ok(())
    }

    /// `(pool id, server id)` of a server, looked up by name.
    async fn ids(&self, server: &str) -> Result<Option<(usize, usize)>, PfError> {
        Ok(backend::find_pool(self.ctx, self.pool)
            .await?
            .and_then(|(pid, b)| b.server_index(server).map(|i| (pid, i))))
    }

    async fn add(&self, server: &PoolServer, status: ServerStatus) -> Result<(), PfError> {
        let (pid, _) = backend::find_pool(self.ctx, self.pool)
            .await?
            .ok_or_else(|| backend::pool_not_found(self.pool))?;
        let body = ServerBody::new(server, status, Some(pid), None)?;
        self.ctx
            .client
            .post(SERVER, &crate::wire::body(&body))
            .await?;
        Ok(())
    }

    async fn patch(&self, server: &PoolServer, status: ServerStatus) -> Result<(), PfError> {
        let (pid, id) = self.ids(&server.name).await?.ok_or_else(|| {
            PfError::failed(format!(
                "server {} vanished from pool {}",
                server.name, self.pool
            ))
        })?;
        let body = ServerBody::new(server, status, Some(pid), Some(id))?;
        self.ctx
            .client
            .patch(SERVER, &crate::wire::body(&body))
            .await?;
        Ok(())
    }

    async fn remove(&self, server: &str) -> Result<(), PfError> {
        if let Some((pid, id)) = self.ids(server).await? {
            self.ctx
                .client
                .delete(
                    SERVER,
                    &[("parent_id", pid.to_string()), ("id", id.to_string())],
                )
                .await?;
        }
        Ok(())
    }
}
