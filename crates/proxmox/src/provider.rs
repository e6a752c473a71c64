//! The `proxmox` provider: bulk observe (one `/cluster/resources` call, then bounded
//! concurrent config reads of declared or owned VMs only), create by clone with no
//! duplicate on retry, in-place updates guarded by the config `digest`, grow-only disk
//! resizes, power state, delete, and the plan-time checks (disk shrink, host capacity).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use cairn_core::{
    Change, CheckResult, Marker, ObserveRequest, Observed, PlannedChange, Provider, ProviderError,
    Resource,
};
use futures::StreamExt;
use proxmox_api::types::bounded_integer::BoundedInteger;
use reqwest::Method;
use serde_json::Value;

use crate::client::{ClientConfig, PveClient, PveError};
use crate::vm::{self, Template, Vm};
use crate::{api, capacity};

/// The Proxmox VE provider.
#[derive(Debug, Clone)]
pub struct ProxmoxProvider {
    client: PveClient,
}

impl ProxmoxProvider {
    /// A provider over a client.
    pub fn new(client: PveClient) -> Self {
        ProxmoxProvider { client }
    }

    /// A provider configured from the environment (see [`ClientConfig::from_env`]).
    pub fn from_env() -> Result<Self, ProviderError> {
        let cfg = ClientConfig::from_env()
            .map_err(|e| ProviderError::new("configure proxmox", e.to_string()))?;
        let client = PveClient::new(cfg).map_err(|e| perr("configure proxmox".into(), e))?;
        Ok(ProxmoxProvider::new(client))
    }

    /// The client.
    pub fn client(&self) -> &PveClient {
        &self.client
    }

    async fn resources(&self) -> Result<Vec<api::VmResource>, PveError> {
        api::vm_resources(&self.client).await
    }

    /// Observes one VM by VMID (fresh resources + config); `None` if it does not exist.
    async fn observe_vm(&self, vmid: u32) -> Result<Option<Observed>, PveError> {
        let res = self.resources().await?;
        let Some(r) = res.into_iter().find(|r| r.vmid == vmid) else {
            return Ok(None);
        };
        let cfg = self
            .client
            .get(&format!("/nodes/{}/qemu/{vmid}/config", r.node), &[])
            .await?;
        let o = vm::observed_from_config(vmid, &r.node, &r.status, &cfg);
        Ok(Some(Observed {
            key: vmid.to_string(),
            value: o.value,
            marker: o.marker,
            uses: Vec::new(),
        }))
    }

    async fn resolve_template(&self, clone: &vm::CloneFrom) -> Result<u32, PveError> {
        if let Some(id) = clone.vmid.as_ref().and_then(|f| f.known()) {
            return Ok(*id);
        }
        let name = clone.name.clone().unwrap_or_default();
        let res = self.resources().await?;
        res.iter()
            .find(|r| r.template && r.name.as_deref() == Some(name.as_str()))
            .map(|r| r.vmid)
            .ok_or_else(|| PveError::Api {
                status: 404,
                message: format!("no template named '{name}' in /cluster/resources"),
                errors: None,
            })
    }

    /// Clones the template into `spec.vmid`. Never clones twice: before every retry the
    /// VMID is looked up, and an existing VM is taken over instead.
    async fn clone_vm(&self, spec: &Vm, marker: &Marker) -> Result<(), PveError> {
        let clone = spec.clone.as_ref().expect("caller checked clone");
        let source = self.resolve_template(clone).await?;
        let trailer = vm::Trailer {
            stack: marker.stack.clone(),
            fp: marker.fingerprint.clone(),
            clone: Some(serde_json::to_value(clone).expect("clone serialises")),
        };
        let newid = proxmox_api::types::VmId::new(spec.vmid as i128)
            .map_err(|e| PveError::Decode(format!("vmid {}: {e:?}", spec.vmid)))?;
        let mut params = api::clone_params(newid);
        params.name = Some(spec.name.clone());
        params.full = Some(clone.full);
        params.description = Some(vm::join_description(&spec.description, &trailer));
        let src = proxmox_api::types::VmId::new(source as i128)
            .map_err(|e| PveError::Decode(format!("vmid {source}: {e:?}")))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = proxmox_api::nodes::NodesClient::new(self.client.clone())
                .node(&spec.node)
                .qemu()
                .vmid(src)
                .clone()
                .post(params.clone())
                .await;
            match res {
                Ok(upid) => return self.client.wait_task(&spec.node, &upid).await,
                Err(e) if e.is_transient() && attempt < self.client.config().retries => {
                    tracing::warn!(vmid = spec.vmid, error = %e, "clone request failed; re-observing before any retry");
                    if self.observe_vm(spec.vmid).await?.is_some() {
                        // The clone was accepted after all: wait for it instead of cloning again.
                        self.client.wait_unlocked(&spec.node, spec.vmid).await?;
                        return Ok(());
                    }
                    tokio::time::sleep(self.client.config().backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Brings the config, disks and power state of an existing VM to `spec`.
    async fn converge(&self, spec: &Vm, marker: &Marker) -> Result<(), PveError> {
        let node = &spec.node;
        let vmid = spec.vmid;
        let cur = self.client.wait_unlocked(node, vmid).await?;
        let cur = cur.as_object().cloned().unwrap_or_default();
        // The delta is computed once, from the config read here; a retry after a checksum
        // mismatch writes the same keys, and only if nobody else changed those keys.
        let desired = vm::desired_config(spec, marker, &cur);
        let (set, delete) = vm::config_delta(&desired, &cur);
        let mut digest = cur.get("digest").and_then(Value::as_str).map(String::from);
        let mut attempts = 0;
        while !set.is_empty() || !delete.is_empty() {
            attempts += 1;
            let mut params = set.clone();
            if !delete.is_empty() {
                params.push(("delete".into(), delete.join(",")));
            }
            if let Some(d) = &digest {
                params.push(("digest".into(), d.clone()));
            }
            let path = format!("/nodes/{node}/qemu/{vmid}/config");
            match self.client.request(Method::PUT, &path, &params).await {
                Ok(_) => break,
                Err(e) if e.is_checksum_mismatch() && attempts < 3 => {
                    // Someone changed the VM since we read it: re-observe; if they touched
                    // a key we are about to write, stop instead of overwriting their change.
                    let fresh = self.client.get(&path, &[]).await?;
                    let touched: Vec<&String> = set
                        .iter()
                        .map(|(k, _)| k)
                        .chain(delete.iter())
                        .filter(|k| fresh.get(k.as_str()) != cur.get(k.as_str()))
                        .collect();
                    if !touched.is_empty() {
                        return Err(PveError::Api {
                            status: 409,
                            message: format!(
                                "checksum mismatch: VM {vmid} changed outside cairn since it was read ({}); nothing was overwritten, re-run the plan",
                                touched
                                    .iter()
                                    .map(|k| k.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            errors: None,
                        });
                    }
                    tracing::info!(
                        vmid,
                        "config changed concurrently in other keys; retrying with the new digest"
                    );
                    digest = fresh
                        .get("digest")
                        .and_then(Value::as_str)
                        .map(String::from);
                }
                Err(e) => return Err(e),
            }
        }
        let cfg = self
            .client
            .get(&format!("/nodes/{node}/qemu/{vmid}/config"), &[])
            .await?;
        for (slot, size) in &spec.disks {
            let want = crate::propstr::parse_size(size).unwrap_or(0);
            let have = cfg
                .get(slot)
                .and_then(Value::as_str)
                .map(|v| crate::propstr::parse(v, Some("file")))
                .and_then(|p| crate::propstr::get(&p, "size").and_then(crate::propstr::parse_size));
            match have {
                Some(h) if h > want => {
                    return Err(PveError::Api {
                        status: 400,
                        message: format!(
                            "disk {slot} of VM {vmid} is {} and cannot shrink to {size}",
                            crate::propstr::format_size(h)
                        ),
                        errors: None,
                    });
                }
                Some(h) if h == want => {}
                Some(_) => {
                    let upid = self
                        .client
                        .request(
                            Method::PUT,
                            &format!("/nodes/{node}/qemu/{vmid}/resize"),
                            &[("disk".into(), slot.clone()), ("size".into(), size.clone())],
                        )
                        .await?;
                    if let Some(upid) = upid.as_str() {
                        self.client.wait_task(node, upid).await?;
                    }
                }
                None => {
                    return Err(PveError::Api {
                        status: 400,
                        message: format!(
                            "VM {vmid} has no disk {slot} to resize (adding disks is not supported)"
                        ),
                        errors: None,
                    });
                }
            }
        }
        let status = api::vm_resources(&self.client)
            .await?
            .into_iter()
            .find(|r| r.vmid == vmid)
            .map(|r| r.status)
            .unwrap_or_default();
        let want_running = spec.state == vm::PowerState::Running;
        if want_running != (status == "running") {
            let action = if want_running { "start" } else { "shutdown" };
            let upid = self
                .client
                .request(
                    Method::POST,
                    &format!("/nodes/{node}/qemu/{vmid}/status/{action}"),
                    &[],
                )
                .await?;
            if let Some(upid) = upid.as_str() {
                self.client.wait_task(node, upid).await?;
            }
        }
        Ok(())
    }
}

fn perr(op: String, e: PveError) -> ProviderError {
    e.into_provider(op)
}

fn spec_of<R: Resource>(change: &Change<'_>) -> Result<R, ProviderError> {
    let v = change.desired.ok_or_else(|| {
        ProviderError::new(
            format!("{} {}", change.kind, change.key),
            "no desired value",
        )
    })?;
    serde_json::from_value(v.clone())
        .map_err(|e| ProviderError::new(format!("decode {}", change.address), e.to_string()))
}

#[async_trait]
impl Provider for ProxmoxProvider {
    fn name(&self) -> &str {
        "proxmox"
    }

    async fn observe(&self, req: ObserveRequest<'_>) -> Result<Vec<Observed>, ProviderError> {
        let op = || format!("observe {}", req.kind);
        let res = self.resources().await.map_err(|e| perr(op(), e))?;
        match req.kind {
            k if k == Template::KIND => Ok(res
                .iter()
                .filter(|r| r.template)
                .filter_map(|r| {
                    let name = r.name.clone()?;
                    req.keys.contains(&name).then(|| Observed {
                        key: name.clone(),
                        value: serde_json::json!({"name": name, "node": r.node, "vmid": r.vmid}),
                        marker: None,
                        uses: Vec::new(),
                    })
                })
                .collect()),
            k if k == Vm::KIND => {
                let keys: BTreeSet<&str> = req.keys.iter().map(String::as_str).collect();
                let tag = vm::marker_tag(req.stack);
                let wanted: Vec<api::VmResource> = res
                    .into_iter()
                    .filter(|r| !r.template)
                    .filter(|r| {
                        keys.contains(r.vmid.to_string().as_str())
                            || r.tags
                                .as_deref()
                                .is_some_and(|t| crate::propstr::split_tags(t).contains(&tag))
                    })
                    .collect();
                let client = &self.client;
                let reads = futures::stream::iter(wanted.into_iter().map(|r| async move {
                    let r = r;
                    let cfg = client
                        .get(&format!("/nodes/{}/qemu/{}/config", r.node, r.vmid), &[])
                        .await;
                    (r, cfg)
                }))
                .buffer_unordered(self.client.config().observe_concurrency.max(1))
                .collect::<Vec<_>>()
                .await;
                let mut out = Vec::new();
                for (r, cfg) in reads {
                    let cfg = match cfg {
                        Ok(c) => c,
                        // Deleted between the list and the read: it no longer exists.
                        Err(e) if e.is_missing() => continue,
                        Err(e) => return Err(perr(format!("observe VM {}", r.vmid), e)),
                    };
                    let o = vm::observed_from_config(r.vmid, &r.node, &r.status, &cfg);
                    out.push(Observed {
                        key: r.vmid.to_string(),
                        value: o.value,
                        marker: o.marker,
                        uses: Vec::new(),
                    });
                }
                out.sort_by(|a, b| a.key.cmp(&b.key));
                Ok(out)
            }
            other => Err(ProviderError::new(op(), format!("unknown kind {other}"))),
        }
    }

    async fn create(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        let op = format!("create {} (VM {})", change.address, change.key);
        if change.kind == Template::KIND {
            return Err(ProviderError::new(
                op,
                "proxmox_template is a read-only lookup",
            ));
        }
        let spec: Vm = spec_of(&change)?;
        let _permit = self.client.node_permit(&spec.node).await;
        tracing::info!(vmid = spec.vmid, node = %spec.node, "creating VM");
        match self
            .observe_vm(spec.vmid)
            .await
            .map_err(|e| perr(op.clone(), e))?
        {
            Some(existing) => {
                let ours = existing
                    .marker
                    .as_ref()
                    .is_some_and(|m| m.stack == change.marker.stack);
                if !ours {
                    return Err(ProviderError::new(
                        op,
                        format!(
                            "VMID {} is already taken by VM '{}' not owned by stack {}",
                            spec.vmid,
                            existing.value["name"].as_str().unwrap_or(""),
                            change.marker.stack
                        ),
                    )
                    .with_code("vmid_taken"));
                }
                tracing::info!(
                    vmid = spec.vmid,
                    "VM already exists (earlier attempt); converging it"
                );
            }
            None => match &spec.clone {
                Some(_) => self
                    .clone_vm(&spec, change.marker)
                    .await
                    .map_err(|e| perr(op.clone(), e))?,
                None => {
                    let mut params = vec![
                        ("vmid".to_string(), spec.vmid.to_string()),
                        ("name".into(), spec.name.clone()),
                    ];
                    for (slot, size) in &spec.disks {
                        let gib = crate::propstr::parse_size(size)
                            .unwrap_or(0)
                            .div_ceil(1 << 30);
                        params.push((slot.clone(), format!("local-lvm:{gib}")));
                    }
                    let upid = self
                        .client
                        .request(Method::POST, &format!("/nodes/{}/qemu", spec.node), &params)
                        .await
                        .map_err(|e| perr(op.clone(), e))?;
                    if let Some(u) = upid.as_str() {
                        self.client
                            .wait_task(&spec.node, u)
                            .await
                            .map_err(|e| perr(op.clone(), e))?;
                    }
                }
            },
        }
        self.converge(&spec, change.marker)
            .await
            .map_err(|e| perr(op.clone(), e))?;
        let obs = self
            .observe_vm(spec.vmid)
            .await
            .map_err(|e| perr(op.clone(), e))?;
        obs.map(|o| o.value)
            .ok_or_else(|| ProviderError::new(op, "VM vanished after create"))
    }

    async fn update(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        let op = format!("update {} (VM {})", change.address, change.key);
        let spec: Vm = spec_of(&change)?;
        let _permit = self.client.node_permit(&spec.node).await;
        self.converge(&spec, change.marker)
            .await
            .map_err(|e| perr(op.clone(), e))?;
        let obs = self
            .observe_vm(spec.vmid)
            .await
            .map_err(|e| perr(op.clone(), e))?;
        obs.map(|o| o.value)
            .ok_or_else(|| ProviderError::new(op, "VM vanished during update"))
    }

    async fn delete(&self, change: Change<'_>) -> Result<(), ProviderError> {
        let op = format!("delete {} (VM {})", change.address, change.key);
        let vmid: u32 = change
            .key
            .parse()
            .map_err(|_| ProviderError::new(op.clone(), "key is not a VMID"))?;
        let Some(obs) = self
            .observe_vm(vmid)
            .await
            .map_err(|e| perr(op.clone(), e))?
        else {
            return Ok(());
        };
        let node = obs.value["node"].as_str().unwrap_or("").to_string();
        let _permit = self.client.node_permit(&node).await;
        let run = |e| perr(op.clone(), e);
        if obs.value["state"] == "running" {
            let upid = self
                .client
                .request(
                    Method::POST,
                    &format!("/nodes/{node}/qemu/{vmid}/status/stop"),
                    &[],
                )
                .await
                .map_err(run)?;
            if let Some(u) = upid.as_str() {
                self.client.wait_task(&node, u).await.map_err(run)?;
            }
        }
        let upid = self
            .client
            .request(
                Method::DELETE,
                &format!("/nodes/{node}/qemu/{vmid}"),
                &[
                    ("purge".into(), "1".into()),
                    ("destroy-unreferenced-disks".into(), "1".into()),
                ],
            )
            .await;
        match upid {
            Ok(u) => {
                if let Some(u) = u.as_str() {
                    self.client.wait_task(&node, u).await.map_err(run)?;
                }
                Ok(())
            }
            Err(e) if e.is_missing() => Ok(()),
            Err(e) => Err(run(e)),
        }
    }

    fn rollout_steps(
        &self,
        kind: &str,
        before: Option<&Observed>,
        after: Option<&Value>,
    ) -> Vec<String> {
        if kind != Vm::KIND {
            return Vec::new();
        }
        let Some(after) = after else {
            return vec![
                "stop the VM".into(),
                "destroy it (purging its disks)".into(),
            ];
        };
        let mut steps = Vec::new();
        if let Some(before) = before {
            let b = &before.value;
            let restart: Vec<&str> = ["cores", "sockets", "memory", "cloud_init"]
                .into_iter()
                .filter(|k| b.get(*k) != after.get(*k))
                .collect();
            if !restart.is_empty() && b["state"] == "running" {
                steps.push(format!(
                    "update config; {} pending until the VM restarts",
                    restart.join(", ")
                ));
            }
        } else {
            match after.get("clone").filter(|c| !c.is_null()) {
                Some(c) => {
                    let src = c["vmid"].as_u64().map_or_else(
                        || format!("'{}'", c["name"].as_str().unwrap_or("?")),
                        |v| v.to_string(),
                    );
                    let how = if c["full"] == true { "full" } else { "linked" };
                    steps.push(format!(
                        "clone template {src} ({how}), wait for the task and the clone lock"
                    ));
                }
                None => steps.push("create the VM".into()),
            }
            steps.push("set cores, memory, network, cloud-init, tags (with digest)".into());
        }
        if let Some(disks) = after["disks"].as_object() {
            for (slot, size) in disks {
                let had = before.and_then(|b| b.value["disks"].get(slot)).cloned();
                if had.as_ref() != Some(size) {
                    steps.push(format!("grow {slot} to {}", size.as_str().unwrap_or("?")));
                }
            }
        }
        if after["state"] == "running" && before.is_none_or(|b| b.value["state"] != "running") {
            steps.push("start the VM".into());
        }
        steps
    }

    async fn check_plan(
        &self,
        changes: &[PlannedChange<'_>],
        settings: &BTreeMap<String, String>,
    ) -> Result<Vec<CheckResult>, ProviderError> {
        let mut out = capacity::disk_shrinks(changes);
        out.extend(
            capacity::check(&self.client, changes, settings)
                .await
                .map_err(|e| perr("check host capacity".into(), e))?,
        );
        Ok(out)
    }
}
