//! The pfSense [`Provider`]: bulk observe per kind, writes looked up by name every time
//! (IDs are array indexes that shift), one apply per subsystem per step, and zero-drop
//! pool changes: new servers are added disabled and enabled only after their health check
//! passed; leaving servers are drained until they hold no session before they are deleted.
//! The same staged add/remove serves a backend's inline servers and pool members.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cairn_core::value::RawRef;
use cairn_core::{
    Change, Declared, Diagnostic, FieldError, Marker, ObserveRequest, Observed, Provider,
    ProviderError, Resource,
};
use serde_json::{Value, json};

use crate::client::{ClientError, PfSenseClient, Subsystem};
use crate::kinds::{
    self, DnsHostOverride, FirewallAlias, HaproxyBackend, HaproxyFrontend, HaproxyPoolMember,
    VirtualIp, alias, backend, frontend, host_override, pool_member, vip,
};
use crate::runtime::{parse_servers_state, parse_stat};

/// Tunables of the provider's staged changes.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// How long a new server may take to pass its health check.
    pub server_check_timeout: Duration,
    /// How long a draining server may keep sessions before it is deleted anyway.
    pub drain_timeout: Duration,
    /// Interface addresses a frontend may bind besides declared VIPs.
    pub interface_addresses: Vec<Ipv4Addr>,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            server_check_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(60),
            interface_addresses: Vec::new(),
        }
    }
}

/// The pfSense provider.
#[derive(Debug, Clone)]
pub struct PfSenseProvider {
    client: PfSenseClient,
    opts: ProviderOptions,
}

const BACKENDS: &str = "/services/haproxy/backends";
const BACKEND: &str = "/services/haproxy/backend";
const SERVER: &str = "/services/haproxy/backend/server";
const FRONTENDS: &str = "/services/haproxy/frontends";
const FRONTEND: &str = "/services/haproxy/frontend";
const VIPS: &str = "/firewall/virtual_ips";
const VIP: &str = "/firewall/virtual_ip";
const OVERRIDES: &str = "/services/dns_resolver/host_overrides";
const OVERRIDE: &str = "/services/dns_resolver/host_override";
const ALIASES: &str = "/firewall/aliases";
const ALIAS: &str = "/firewall/alias";

/// Converts an API object into (key, spec value, text holding the marker).
type FromApi = fn(&Value) -> (String, Value, String);

fn is_serving(status: &str) -> bool {
    matches!(status, "active" | "backup")
}

impl PfSenseProvider {
    /// A provider over this client.
    pub fn new(client: PfSenseClient, opts: ProviderOptions) -> Self {
        PfSenseProvider { client, opts }
    }

    /// A provider configured from the environment (`PFSENSE_URL`, `PFSENSE_API_KEY`, and
    /// `PFSENSE_CA_FILE` or `PFSENSE_TLS_FINGERPRINT`), with default options.
    pub fn from_env() -> Result<Self, ClientError> {
        Ok(Self::new(
            PfSenseClient::from_env()?,
            ProviderOptions::default(),
        ))
    }

    /// The client.
    pub fn client(&self) -> &PfSenseClient {
        &self.client
    }

    /// A "HAProxy backend server UP" gate probe for server `server` of pool `pool`.
    pub fn server_up(&self, pool: &str, server: &str) -> crate::gate::HaproxyServerUp {
        crate::gate::HaproxyServerUp::new(self.client.clone(), pool, server)
    }

    /// The [`Self::server_up`] gate for a pool member (its pool name as in its key).
    pub fn member_up(&self, member: &HaproxyPoolMember) -> crate::gate::HaproxyServerUp {
        self.server_up(&member.pool_name(), &member.name)
    }

    async fn list_kind(&self, kind: &str) -> Result<Vec<Observed>, ClientError> {
        if kind == HaproxyPoolMember::KIND {
            return Ok(self
                .list_members()
                .await?
                .into_iter()
                .map(|m| m.0)
                .collect());
        }
        let (path, conv): (&str, FromApi) = match kind {
            VirtualIp::KIND => (VIPS, vip::from_api),
            HaproxyBackend::KIND => (BACKENDS, backend::from_api),
            HaproxyFrontend::KIND => (FRONTENDS, frontend::from_api),
            DnsHostOverride::KIND => (OVERRIDES, host_override::from_api),
            FirewallAlias::KIND => (ALIASES, alias::from_api),
            _ => return Ok(Vec::new()),
        };
        let items = self.client.list(path, &[]).await?;
        let mut observed: Vec<Observed> = items
            .iter()
            .map(|obj| {
                let (key, mut value, text) = conv(obj);
                let (descr, marker) = if kind == HaproxyBackend::KIND {
                    (None, kinds::split_marker_comment(&text).1)
                } else {
                    let (d, m) = kinds::split_marker(&text);
                    (Some(d), m)
                };
                if let Some(d) = descr {
                    value["descr"] = json!(d);
                }
                let mut uses = Vec::new();
                if kind == DnsHostOverride::KIND {
                    for ip in value["ip"].as_array().into_iter().flatten() {
                        if let Some(ip) = ip.as_str() {
                            uses.push((VirtualIp::KIND.to_string(), ip.to_string()));
                        }
                    }
                }
                if kind == HaproxyFrontend::KIND {
                    if let Some(b) = value["default_backend"].as_str().filter(|b| !b.is_empty()) {
                        uses.push((HaproxyBackend::KIND.to_string(), b.to_string()));
                    }
                    for a in value["addresses"].as_array().into_iter().flatten() {
                        if let Some(ip) = a["address"].as_str() {
                            uses.push((VirtualIp::KIND.to_string(), ip.to_string()));
                        }
                    }
                }
                Observed {
                    key,
                    value,
                    marker,
                    uses,
                }
            })
            .collect();
        if kind == HaproxyBackend::KIND {
            self.overlay_runtime_state(&mut observed).await;
        }
        Ok(observed)
    }

    /// Every server of every backend as a pool member (one list of backends, plus the
    /// runtime state read), each with whether its backend's servers are managed as members.
    /// A member's marker is its backend's marker without a fingerprint.
    async fn list_members(&self) -> Result<Vec<(Observed, bool)>, ClientError> {
        let items = self.client.list(BACKENDS, &[]).await?;
        let mut backends = Vec::new();
        let mut members_mode = Vec::new();
        for obj in &items {
            let (key, value, adv) = backend::from_api(obj);
            members_mode.push(adv.lines().any(|l| l.trim() == kinds::MEMBERS_COMMENT));
            backends.push(Observed {
                key,
                value,
                marker: kinds::split_marker_comment(&adv).1,
                uses: Vec::new(),
            });
        }
        self.overlay_runtime_state(&mut backends).await;
        let mut out = Vec::new();
        for (b, mode) in backends.into_iter().zip(members_mode) {
            let marker = b.marker.map(|m| Marker {
                stack: m.stack,
                fingerprint: None,
            });
            for server in b.value["servers"].as_array().into_iter().flatten() {
                let (key, value) = pool_member::from_server(&b.key, server);
                out.push((
                    Observed {
                        key,
                        value,
                        marker: marker.clone(),
                        uses: vec![(HaproxyBackend::KIND.to_string(), b.key.clone())],
                    },
                    mode,
                ));
            }
        }
        Ok(out)
    }

    /// A server that is `active` in the configuration but drained or in maintenance in the
    /// running HAProxy (e.g. an apply interrupted between its steps) does not take traffic:
    /// report its status as `drain`/`maint` so the diff shows it and an update restores it.
    async fn overlay_runtime_state(&self, observed: &mut [Observed]) {
        let any_serving = observed.iter().any(|o| {
            o.value["servers"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|x| is_serving(x["status"].as_str().unwrap_or("")))
            })
        });
        if !any_serving {
            return;
        }
        let states = match self.client.haproxy_runtime("show servers state").await {
            Ok(text) => parse_servers_state(&text),
            Err(e) => {
                tracing::debug!("runtime state not readable, observing configuration only: {e}");
                return;
            }
        };
        for o in observed.iter_mut() {
            let be = format!("{}_ipvANY", o.key);
            for server in o.value["servers"].as_array_mut().into_iter().flatten() {
                if !is_serving(server["status"].as_str().unwrap_or("")) {
                    continue;
                }
                let name = server["name"].as_str().unwrap_or("");
                if let Some(st) = states.iter().find(|s| s.backend == be && s.server == name) {
                    if st.admin_state & 0x01 != 0 {
                        server["status"] = json!("maint");
                    } else if st.admin_state & 0x08 != 0 {
                        server["status"] = json!("drain");
                    }
                }
            }
        }
    }

    async fn find(&self, kind: &str, key: &str) -> Result<Option<(usize, Value)>, ClientError> {
        let (path, conv): (&str, FromApi) = match kind {
            VirtualIp::KIND => (VIPS, vip::from_api),
            HaproxyBackend::KIND => (BACKENDS, backend::from_api),
            HaproxyFrontend::KIND => (FRONTENDS, frontend::from_api),
            DnsHostOverride::KIND => (OVERRIDES, host_override::from_api),
            FirewallAlias::KIND => (ALIASES, alias::from_api),
            _ => return Ok(None),
        };
        let filter: Vec<(&str, String)> = match kind {
            VirtualIp::KIND => vec![("subnet", key.to_string())],
            DnsHostOverride::KIND => Vec::new(),
            _ => vec![("name", key.to_string())],
        };
        let items = self.client.list(path, &filter).await?;
        Ok(items.into_iter().find_map(|obj| {
            let id = obj["id"].as_u64()? as usize;
            (conv(&obj).0 == key).then_some((id, obj))
        }))
    }

    async fn observed_value(
        &self,
        kind: &str,
        key: &str,
        op: &str,
    ) -> Result<Value, ProviderError> {
        let all = self
            .list_kind(kind)
            .await
            .map_err(|e| e.into_provider(op))?;
        all.into_iter()
            .find(|o| o.key == key)
            .map(|o| o.value)
            .ok_or_else(|| {
                ProviderError::new(op, format!("{kind} {key} not found after the write"))
            })
    }

    fn body(kind: &str, desired: &Value, marker: &Marker, prior_raw: Option<&Value>) -> Value {
        let descr = kinds::descr_with_marker(desired["descr"].as_str().unwrap_or(""), marker);
        match kind {
            VirtualIp::KIND => vip::to_api(desired, descr),
            HaproxyFrontend::KIND => frontend::to_api(desired, descr),
            DnsHostOverride::KIND => host_override::to_api(desired, descr),
            FirewallAlias::KIND => alias::to_api(desired, descr),
            _ => {
                let rest = prior_raw
                    .and_then(|p| p["advanced_backend"].as_str())
                    .map(|a| kinds::split_marker_comment(a).0)
                    .unwrap_or_default();
                let mut comment = kinds::marker_comment(marker);
                if desired["servers"].is_null() {
                    comment = format!("{comment}\n{}", kinds::MEMBERS_COMMENT);
                }
                let adv = if rest.is_empty() {
                    comment
                } else {
                    format!("{rest}\n{comment}")
                };
                backend::to_api(desired, adv)
            }
        }
    }

    /// Creates or updates an object of a simple kind (everything but pool servers).
    async fn write_simple(&self, change: &Change<'_>, op: &str) -> Result<Value, ProviderError> {
        let desired = change
            .desired
            .ok_or_else(|| ProviderError::new(op, "no desired value"))?;
        let err = |e: ClientError| e.into_provider(op);
        let (single, sub) = match change.kind {
            VirtualIp::KIND => (VIP, Subsystem::VirtualIp),
            HaproxyFrontend::KIND => (FRONTEND, Subsystem::Haproxy),
            DnsHostOverride::KIND => (OVERRIDE, Subsystem::DnsResolver),
            FirewallAlias::KIND => (ALIAS, Subsystem::Firewall),
            HaproxyBackend::KIND => (BACKEND, Subsystem::Haproxy),
            other => return Err(ProviderError::new(op, format!("unknown kind {other}"))),
        };
        let existing = self.find(change.kind, change.key).await.map_err(err)?;
        let body = Self::body(
            change.kind,
            desired,
            change.marker,
            existing.as_ref().map(|e| &e.1),
        );
        match existing {
            Some((id, _)) => {
                let mut b = body;
                b["id"] = json!(id);
                self.client.patch(single, &b).await.map_err(err)?;
            }
            None => {
                self.client.post(single, &body).await.map_err(err)?;
            }
        }
        self.client.apply(sub).await.map_err(err)?;
        Ok(Value::Null)
    }

    /// Finds `(parent_id, id)` of a server by backend and server name.
    async fn server_ids(
        &self,
        pool: &str,
        server: &str,
    ) -> Result<Option<(usize, usize)>, ClientError> {
        let Some((pid, obj)) = self.find(HaproxyBackend::KIND, pool).await? else {
            return Ok(None);
        };
        Ok(obj["servers"]
            .as_array()
            .and_then(|s| s.iter().position(|x| x["name"] == server))
            .map(|i| (pid, i)))
    }

    async fn patch_server(
        &self,
        pool: &str,
        server: &Value,
        status: &str,
        op: &str,
    ) -> Result<(), ProviderError> {
        let name = server["name"].as_str().unwrap_or("");
        let (pid, id) = self
            .server_ids(pool, name)
            .await
            .map_err(|e| e.into_provider(op))?
            .ok_or_else(|| {
                ProviderError::new(op, format!("server {name} vanished from pool {pool}"))
            })?;
        let mut body = backend::server_to_api(server, status);
        body["parent_id"] = json!(pid);
        body["id"] = json!(id);
        self.client
            .patch(SERVER, &body)
            .await
            .map_err(|e| e.into_provider(op))?;
        Ok(())
    }

    async fn runtime_set(&self, pool: &str, server: &str, state: &str) -> Result<(), ClientError> {
        self.client
            .haproxy_runtime(&format!("set server {pool}_ipvANY/{server} state {state}"))
            .await
            .map(|_| ())
    }

    /// Waits until every named server of the pool is UP with a passed check; returns the
    /// names that never got there.
    async fn wait_checks(&self, pool: &str, names: &[String]) -> Vec<String> {
        let deadline = Instant::now() + self.opts.server_check_timeout;
        let be = format!("{pool}_ipvANY");
        loop {
            let passed: Vec<String> = match self
                .client
                .haproxy_runtime(&format!("show servers state {be}"))
                .await
            {
                Ok(text) => parse_servers_state(&text)
                    .into_iter()
                    .filter(|s| s.backend == be && s.check_passed())
                    .map(|s| s.server)
                    .collect(),
                Err(e) => {
                    tracing::debug!("runtime state not readable yet: {e}");
                    Vec::new()
                }
            };
            let missing: Vec<String> = names
                .iter()
                .filter(|n| !passed.contains(n))
                .cloned()
                .collect();
            if missing.is_empty() || Instant::now() > deadline {
                return missing;
            }
            tokio::time::sleep(self.client.timing().poll).await;
        }
    }

    /// Waits until the named servers hold no session (or the drain timeout passes).
    async fn wait_drained(&self, pool: &str, names: &[String]) {
        let deadline = Instant::now() + self.opts.drain_timeout;
        let be = format!("{pool}_ipvANY");
        loop {
            let busy: Vec<(String, u64)> = match self.client.haproxy_runtime("show stat").await {
                Ok(text) => parse_stat(&text)
                    .into_iter()
                    .filter(|r| r.proxy == be && names.contains(&r.server) && r.scur > 0)
                    .map(|r| (r.server, r.scur))
                    .collect(),
                Err(_) => Vec::new(),
            };
            if busy.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                tracing::warn!(
                    ?busy,
                    pool,
                    "drain timeout: removing servers that still hold sessions"
                );
                return;
            }
            tokio::time::sleep(self.client.timing().poll).await;
        }
    }

    /// Brings the pool's servers from `prior` to `desired` without dropping traffic, make
    /// before break: new servers are added and proven healthy before leaving ones drain.
    async fn sync_servers(
        &self,
        pool: &str,
        prior: &[Value],
        desired: &[Value],
        checks: bool,
        op: &str,
    ) -> Result<(), ProviderError> {
        let err = |e: ClientError| e.into_provider(op);
        let by_name = |list: &[Value]| -> BTreeMap<String, Value> {
            list.iter()
                .map(|s| (s["name"].as_str().unwrap_or("").to_string(), s.clone()))
                .collect()
        };
        let mut before = by_name(prior);
        let after = by_name(desired);
        let status = |v: &Value| v["status"].as_str().unwrap_or("active").to_string();

        // 0. A server that moves (address, port, TLS) is a new endpoint. HAProxy restores a
        //    server's address and port from the state file on reload, so a moved server is
        //    drained, deleted and applied first, then added again like a new one.
        let moved: Vec<String> = before
            .iter()
            .filter(|(n, b)| {
                after
                    .get(*n)
                    .is_some_and(|a| ["address", "port", "ssl"].iter().any(|f| b[*f] != a[*f]))
            })
            .map(|(n, _)| n.clone())
            .collect();
        if !moved.is_empty() {
            for name in &moved {
                if is_serving(&status(&before[name])) {
                    let _ = self.runtime_set(pool, name, "drain").await;
                }
            }
            self.wait_drained(pool, &moved).await;
            for name in &moved {
                if let Some((pid, id)) = self.server_ids(pool, name).await.map_err(err)? {
                    self.client
                        .delete(
                            SERVER,
                            &[("parent_id", pid.to_string()), ("id", id.to_string())],
                        )
                        .await
                        .map_err(err)?;
                }
                before.remove(name);
            }
            self.client.apply(Subsystem::Haproxy).await.map_err(err)?;
        }
        // `drain`/`maint` are runtime states of a server that is active in the config.
        let config_status = |st: String| match st.as_str() {
            "drain" | "maint" => "active".to_string(),
            _ => st,
        };
        let leaving: Vec<String> = before
            .iter()
            .filter(|(n, b)| {
                is_serving(&status(b)) && after.get(*n).is_none_or(|a| !is_serving(&status(a)))
            })
            .map(|(n, _)| n.clone())
            .collect();

        // 1. Add new servers (disabled when they must pass a check first) and apply other
        //    edits of staying servers; one apply.
        let mut wrote = false;
        let mut gated: Vec<String> = Vec::new();
        for (name, want) in &after {
            if leaving.contains(name) {
                continue; // changed after it is drained, in step 4
            }
            let entering = is_serving(&status(want))
                && before.get(name).is_none_or(|b| !is_serving(&status(b)));
            if checks && entering {
                gated.push(name.clone());
            }
            match before.get(name) {
                None => {
                    let staged = if checks && entering {
                        "disabled".to_string()
                    } else {
                        status(want)
                    };
                    let (pid, _) = self
                        .find(HaproxyBackend::KIND, pool)
                        .await
                        .map_err(err)?
                        .ok_or_else(|| ProviderError::new(op, format!("pool {pool} not found")))?;
                    let mut body = backend::server_to_api(want, &staged);
                    body["parent_id"] = json!(pid);
                    self.client.post(SERVER, &body).await.map_err(err)?;
                    wrote = true;
                }
                Some(have) => {
                    let mut cmp = want.clone();
                    cmp["status"] = json!(if checks && entering {
                        status(have)
                    } else {
                        status(want)
                    });
                    if &cmp != have {
                        let st = config_status(status(&cmp));
                        self.patch_server(pool, want, &st, op).await?;
                        wrote = true;
                    }
                }
            }
        }
        if wrote {
            self.client.apply(Subsystem::Haproxy).await.map_err(err)?;
        }

        // 2. Gate: let HAProxy check the new servers without sending them traffic.
        let mut failed = Vec::new();
        if !gated.is_empty() {
            for name in &gated {
                self.runtime_set(pool, name, "drain").await.map_err(err)?;
            }
            failed = self.wait_checks(pool, &gated).await;
            let passed: Vec<&String> = gated.iter().filter(|n| !failed.contains(n)).collect();

            // 3. Enable the ready ones: runtime ready first, then config active and reload.
            //    The state file saved before the reload carries "ready" into the new
            //    process, so old and new processes agree. (Config first, runtime second
            //    left the still-accepting old process with the server drained for a moment
            //    after the reload: with no other server in the pool, its connections were
            //    closed.)
            for name in &passed {
                self.runtime_set(pool, name, "ready").await.map_err(err)?;
            }
            for name in &passed {
                let st = status(&after[*name]);
                self.patch_server(pool, &after[*name], &st, op).await?;
            }
            if !passed.is_empty() {
                self.client.apply(Subsystem::Haproxy).await.map_err(err)?;
            }
        }
        if !failed.is_empty() {
            for name in &failed {
                let _ = self.runtime_set(pool, name, "maint").await;
            }
            return Err(ProviderError::new(
                op,
                format!(
                    "server(s) {} never passed their health check within {:?}; they stay disabled (not taking traffic) and no server was removed; check their health endpoint and apply again",
                    failed.join(", "),
                    self.opts.server_check_timeout
                ),
            )
            .with_code("HEALTH_CHECK_TIMEOUT"));
        }

        // 4. Drain leaving servers, wait until they hold no session, then delete or disable
        //    them; one apply.
        for name in &leaving {
            if let Err(e) = self.runtime_set(pool, name, "drain").await {
                tracing::warn!("could not drain {pool}/{name}: {e}");
            }
        }
        if !leaving.is_empty() {
            self.wait_drained(pool, &leaving).await;
        }
        let mut wrote = false;
        for name in before.keys().filter(|n| !after.contains_key(*n)) {
            if let Some((pid, id)) = self.server_ids(pool, name).await.map_err(err)? {
                self.client
                    .delete(
                        SERVER,
                        &[("parent_id", pid.to_string()), ("id", id.to_string())],
                    )
                    .await
                    .map_err(err)?;
                wrote = true;
            }
        }
        for name in leaving.iter().filter(|n| after.contains_key(*n)) {
            let want = &after[name];
            self.patch_server(pool, want, &status(want), op).await?;
            wrote = true;
        }
        if wrote {
            self.client.apply(Subsystem::Haproxy).await.map_err(err)?;
        }
        Ok(())
    }

    async fn write_backend(&self, change: &Change<'_>, op: &str) -> Result<Value, ProviderError> {
        let desired = change
            .desired
            .ok_or_else(|| ProviderError::new(op, "no desired value"))?;
        let err = |e: ClientError| e.into_provider(op);
        let existing = self
            .find(HaproxyBackend::KIND, change.key)
            .await
            .map_err(err)?;
        // The servers as they are now, runtime drain/maint included (not the plan's copy:
        // the world may have moved since).
        let inline = !desired["servers"].is_null();
        let prior_servers: Vec<Value> = if existing.is_some() && inline {
            self.list_kind(HaproxyBackend::KIND)
                .await
                .map_err(err)?
                .into_iter()
                .find(|o| o.key == change.key)
                .and_then(|o| o.value["servers"].as_array().cloned())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let body = Self::body(
            change.kind,
            desired,
            change.marker,
            existing.as_ref().map(|e| &e.1),
        );
        match &existing {
            None => {
                self.client.post(BACKEND, &body).await.map_err(err)?;
                self.client.apply(Subsystem::Haproxy).await.map_err(err)?;
            }
            Some((id, raw)) => {
                let (_, mut now, raw_adv) = backend::from_api(raw);
                if !inline {
                    now["servers"] = Value::Null;
                }
                let current = Self::body(change.kind, &now, change.marker, Some(raw));
                if current != body
                    || !raw_adv.contains(&kinds::marker_comment(change.marker))
                    || (!inline && !raw_adv.contains(kinds::MEMBERS_COMMENT))
                {
                    let mut b = body;
                    b["id"] = json!(id);
                    self.client.patch(BACKEND, &b).await.map_err(err)?;
                    self.client.apply(Subsystem::Haproxy).await.map_err(err)?;
                }
            }
        }
        if inline {
            let desired_servers = desired["servers"].as_array().cloned().unwrap_or_default();
            self.sync_servers(
                change.key,
                &prior_servers,
                &desired_servers,
                HaproxyBackend::has_checks(desired),
                op,
            )
            .await?;
        }
        self.observed_value(change.kind, change.key, op).await
    }

    /// Creates or updates one pool member through the same staged add (and move) as the
    /// backend's inline servers; only this server is touched.
    async fn write_member(&self, change: &Change<'_>, op: &str) -> Result<Value, ProviderError> {
        let desired = change
            .desired
            .ok_or_else(|| ProviderError::new(op, "no desired value"))?;
        let err = |e: ClientError| e.into_provider(op);
        let pool = desired["pool"].as_str().unwrap_or("");
        let (pool_id, raw) = self
            .find(HaproxyBackend::KIND, pool)
            .await
            .map_err(err)?
            .ok_or_else(|| {
                ProviderError::new(
                    op,
                    format!(
                        "pool {pool} not found: create its {} first (reference it with `pool.name()` so the member waits for it)",
                        HaproxyBackend::KIND
                    ),
                )
                .with_code("POOL_NOT_FOUND")
            })?;
        let (_, pool_value, adv) = backend::from_api(&raw);
        let checks = HaproxyBackend::has_checks(&pool_value);
        // A pool of this stack that still manages its servers inline (a stack moving from
        // inline servers to members) is switched to members, so servers dropped from the
        // stack later are found and removed.
        let owned_here = kinds::split_marker_comment(&adv)
            .1
            .is_some_and(|m| m.stack == change.marker.stack);
        if owned_here && !adv.lines().any(|l| l.trim() == kinds::MEMBERS_COMMENT) {
            // No write since the lookup, so its id still holds.
            let adv = format!("{adv}\n{}", kinds::MEMBERS_COMMENT);
            let body = json!({"id": pool_id, "advanced_backend": adv});
            self.client.patch(BACKEND, &body).await.map_err(err)?;
            self.client.apply(Subsystem::Haproxy).await.map_err(err)?;
        }
        // The server as it is now, runtime drain/maint included.
        let prior = self.current_member(change.key).await.map_err(err)?;
        self.sync_servers(pool, &prior, std::slice::from_ref(desired), checks, op)
            .await?;
        self.observed_value(change.kind, change.key, op).await
    }

    /// The member with this key as observed now (empty when absent).
    async fn current_member(&self, key: &str) -> Result<Vec<Value>, ClientError> {
        Ok(self
            .list_members()
            .await?
            .into_iter()
            .filter(|(o, _)| o.key == key)
            .map(|(o, _)| o.value)
            .collect())
    }

    /// Removes one pool member safely: drain, wait for no sessions, delete, apply.
    async fn delete_member(&self, change: &Change<'_>, op: &str) -> Result<(), ProviderError> {
        let current = self
            .current_member(change.key)
            .await
            .map_err(|e| e.into_provider(op))?;
        let Some(pool) = current
            .first()
            .and_then(|m| m["pool"].as_str())
            .map(str::to_string)
        else {
            return Ok(()); // already gone
        };
        self.sync_servers(&pool, &current, &[], true, op).await
    }

    async fn write(&self, change: Change<'_>, verb: &str) -> Result<Value, ProviderError> {
        let op = format!("{verb} {} {}", change.kind, change.key);
        if change.kind == HaproxyBackend::KIND {
            return self.write_backend(&change, &op).await;
        }
        if change.kind == HaproxyPoolMember::KIND {
            return self.write_member(&change, &op).await;
        }
        self.write_simple(&change, &op).await?;
        self.observed_value(change.kind, change.key, &op).await
    }

    /// The staged steps of a pool change (also used by [`Provider::rollout_steps`]).
    pub fn pool_steps(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
        let Some(after) = after else {
            return Vec::new();
        };
        let pool = after["name"].as_str().unwrap_or("");
        if after["servers"].is_null() {
            // Servers managed as pool members: their own changes carry the steps.
            return if before.is_none() {
                vec![format!(
                    "create pool {pool} without servers (they are pool members), apply HAProxy"
                )]
            } else {
                Vec::new()
            };
        }
        let checks = HaproxyBackend::has_checks(after);
        // name → (status, endpoint)
        let list = |v: Option<&Value>| -> BTreeMap<String, (String, String)> {
            v.and_then(|v| v["servers"].as_array())
                .into_iter()
                .flatten()
                .map(|s| {
                    let endpoint = format!(
                        "{}:{}{}",
                        s["address"].as_str().unwrap_or("?"),
                        s["port"],
                        if s["ssl"] == json!(true) { " ssl" } else { "" }
                    );
                    (
                        s["name"].as_str().unwrap_or("").to_string(),
                        (
                            s["status"].as_str().unwrap_or("active").to_string(),
                            endpoint,
                        ),
                    )
                })
                .collect()
        };
        let (b, a) = (list(before), list(Some(after)));
        let mut steps = Vec::new();
        if before.is_none() {
            steps.push(format!("create pool {pool} without servers, apply HAProxy"));
        }
        let gated: Vec<&String> = a
            .iter()
            .filter(|(n, (st, ep))| {
                checks
                    && is_serving(st)
                    && b.get(*n)
                        .is_none_or(|(bst, bep)| !is_serving(bst) || bep != ep)
            })
            .map(|(n, _)| n)
            .collect();
        let moved: Vec<&String> = b
            .iter()
            .filter(|(n, (_, ep))| a.get(*n).is_some_and(|(_, aep)| aep != ep))
            .map(|(n, _)| n)
            .collect();
        for name in &moved {
            let ep = &b[*name].1;
            steps.push(format!(
                "move {name} from {ep}: drain, wait for no sessions, delete, apply HAProxy"
            ));
        }
        for name in &gated {
            match b.get(*name) {
                Some((_, ep)) if *ep != a[*name].1 => {
                    steps.push(format!("add {name} at {} disabled", a[*name].1))
                }
                Some(_) => steps.push(format!("keep {name} disabled")),
                None => steps.push(format!("add {name} disabled")),
            }
        }
        if !gated.is_empty() {
            steps.push("apply HAProxy".into());
        }
        for name in &gated {
            steps.push(format!(
                "gate: {name} health check passes (HAProxy runtime API, show servers state)"
            ));
            steps.push(format!(
                "set {name} active, apply HAProxy, runtime state ready"
            ));
        }
        let leaving: Vec<&String> = b
            .iter()
            .filter(|(n, (st, _))| is_serving(st) && a.get(*n).is_none_or(|(s, _)| !is_serving(s)))
            .map(|(n, _)| n)
            .collect();
        for name in &leaving {
            steps.push(format!("drain {name} (HAProxy runtime API)"));
            steps.push(format!("gate: {name} holds no sessions"));
        }
        let removed: Vec<&String> = b.keys().filter(|n| !a.contains_key(*n)).collect();
        for name in &removed {
            steps.push(format!("delete {name}"));
        }
        for name in leaving.iter().filter(|n| a.contains_key(**n)) {
            steps.push(format!("set {name} {}", a[*name].0));
        }
        if !removed.is_empty() || !leaving.is_empty() {
            steps.push("apply HAProxy".into());
        }
        steps
    }

    /// The staged steps of a pool member change (also used by [`Provider::rollout_steps`]):
    /// the pool's steps for a pool holding just this server. The gated steps assume the pool
    /// is health-checked (without checks a new server is added as it is).
    pub fn member_steps(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
        let Some(pool) = after.or(before).and_then(|v| v["pool"].as_str()) else {
            return Vec::new();
        };
        let as_pool = |m: Option<&Value>| {
            json!({"name": pool, "check_type": "HTTP",
                   "servers": m.map(|m| vec![m.clone()]).unwrap_or_default()})
        };
        let mut steps = Self::pool_steps(Some(&as_pool(before)), Some(&as_pool(after)));
        if before.is_none()
            && let Some(first) = steps.first_mut()
        {
            *first = format!("{first} to pool {pool} (looked up by name)");
        }
        steps
    }
}

#[async_trait]
impl Provider for PfSenseProvider {
    fn name(&self) -> &str {
        kinds::PROVIDER
    }

    fn kinds(&self) -> &[&'static str] {
        &[
            VirtualIp::KIND,
            HaproxyBackend::KIND,
            HaproxyFrontend::KIND,
            DnsHostOverride::KIND,
            FirewallAlias::KIND,
            HaproxyPoolMember::KIND,
        ]
    }

    /// pfSense holds one config and one apply queue: changes run one at a time.
    fn concurrency(&self) -> usize {
        1
    }

    async fn observe(&self, req: ObserveRequest<'_>) -> Result<Vec<Observed>, ProviderError> {
        if req.kind == HaproxyPoolMember::KIND {
            // Declared members, plus every server of a pool owned by this stack whose
            // servers are managed as members (inline servers belong to their backend).
            let all = self
                .list_members()
                .await
                .map_err(|e| e.into_provider(format!("observe {}", req.kind)))?;
            let ours = |o: &Observed| o.marker.as_ref().is_some_and(|m| m.stack == req.stack);
            return Ok(all
                .into_iter()
                .filter(|(o, members_mode)| req.keys.contains(&o.key) || (*members_mode && ours(o)))
                .map(|(mut o, members_mode)| {
                    // A declared member of this stack's pool that still manages its servers
                    // inline is not a member yet: adopting it switches the pool over.
                    if !members_mode && ours(&o) {
                        o.marker = None;
                    }
                    o
                })
                .collect());
        }
        let all = self
            .list_kind(req.kind)
            .await
            .map_err(|e| e.into_provider(format!("observe {}", req.kind)))?;
        Ok(all
            .into_iter()
            .filter(|o| {
                req.keys.contains(&o.key) || o.marker.as_ref().is_some_and(|m| m.stack == req.stack)
            })
            .collect())
    }

    async fn create(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        self.write(change, "create").await
    }

    async fn update(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        self.write(change, "update").await
    }

    async fn delete(&self, change: Change<'_>) -> Result<(), ProviderError> {
        let op = format!("delete {} {}", change.kind, change.key);
        if change.kind == HaproxyPoolMember::KIND {
            return self.delete_member(&change, &op).await;
        }
        let err = |e: ClientError| e.into_provider(&op);
        let (single, sub) = match change.kind {
            VirtualIp::KIND => (VIP, Subsystem::VirtualIp),
            HaproxyFrontend::KIND => (FRONTEND, Subsystem::Haproxy),
            DnsHostOverride::KIND => (OVERRIDE, Subsystem::DnsResolver),
            FirewallAlias::KIND => (ALIAS, Subsystem::Firewall),
            HaproxyBackend::KIND => (BACKEND, Subsystem::Haproxy),
            other => return Err(ProviderError::new(&op, format!("unknown kind {other}"))),
        };
        if change.kind == HaproxyBackend::KIND
            && let Some((_, raw)) = self.find(change.kind, change.key).await.map_err(err)?
        {
            let servers = backend::from_api(&raw).1["servers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            self.sync_servers(change.key, &servers, &[], true, &op)
                .await?;
        }
        if let Some((id, _)) = self.find(change.kind, change.key).await.map_err(err)? {
            self.client
                .delete(single, &[("id", id.to_string())])
                .await
                .map_err(err)?;
            self.client.apply(sub).await.map_err(err)?;
        }
        Ok(())
    }

    fn rollout_steps(
        &self,
        kind: &str,
        before: Option<&Observed>,
        after: Option<&Value>,
    ) -> Vec<String> {
        match kind {
            HaproxyBackend::KIND => Self::pool_steps(before.map(|o| &o.value), after),
            HaproxyPoolMember::KIND => Self::member_steps(before.map(|o| &o.value), after),
            _ => Vec::new(),
        }
    }

    fn validate(&self, declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        let vips: Vec<&Declared<'_>> = declared
            .iter()
            .filter(|d| d.kind == VirtualIp::KIND)
            .collect();
        let vip_ips: Vec<String> = vips
            .iter()
            .filter_map(|d| d.spec["address"].as_str().map(str::to_string))
            .chain(
                self.opts
                    .interface_addresses
                    .iter()
                    .map(ToString::to_string),
            )
            .collect();
        let mut out = Vec::new();
        for fe in declared.iter().filter(|d| d.kind == HaproxyFrontend::KIND) {
            for (i, a) in fe.spec["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let field = format!("addresses[{i}].address");
                let problem = match RawRef::from_marker(&a["address"]) {
                    Some(r) => {
                        let ok = r.address.kind() == VirtualIp::KIND
                            && r.attr == "address"
                            && vips.iter().any(|v| *v.address == r.address);
                        (!ok).then(|| {
                            format!(
                                "binds to {r}, which is not the address of a declared {}",
                                VirtualIp::KIND
                            )
                        })
                    }
                    None => {
                        let ip = a["address"].as_str().unwrap_or("");
                        (!vip_ips.iter().any(|v| v == ip)).then(|| {
                            format!("binds to {ip}, which no declared {} or known interface address owns", VirtualIp::KIND)
                        })
                    }
                };
                if let Some(message) = problem {
                    out.push(Diagnostic {
                        address: fe.address.clone(),
                        error: FieldError::new(field, message),
                    });
                }
            }
        }
        out.extend(validate_members(declared));
        out
    }
}

/// Pool members against the declared backends: a pool's servers are either inline or
/// members, never both; a referenced pool must be declared under its pool name (the
/// member's key is derived from the reference's address).
fn validate_members(declared: &[Declared<'_>]) -> Vec<Diagnostic> {
    let backends: Vec<&Declared<'_>> = declared
        .iter()
        .filter(|d| d.kind == HaproxyBackend::KIND)
        .collect();
    let mut out = Vec::new();
    for m in declared
        .iter()
        .filter(|d| d.kind == HaproxyPoolMember::KIND)
    {
        let mut problem = |message: String| {
            out.push(Diagnostic {
                address: m.address.clone(),
                error: FieldError::new("pool", message),
            })
        };
        let target = match RawRef::from_marker(&m.spec["pool"]) {
            Some(r) => {
                if r.address.kind() != HaproxyBackend::KIND || r.attr != "name" {
                    problem(format!(
                        "refers to {r}; a pool member's pool must be a {}'s name (`pool.name()`) or a literal",
                        HaproxyBackend::KIND
                    ));
                    continue;
                }
                let found = backends.iter().find(|b| *b.address == r.address);
                if let Some(b) = found
                    && b.key != r.address.name()
                {
                    problem(format!(
                        "refers to {} whose pool name is {:?}: declare that backend under its pool name (`add({:?}, …)`), the member's key {:?} is derived from it",
                        r.address, b.key, b.key, m.key
                    ));
                    continue;
                }
                found
            }
            None => {
                let name = m.spec["pool"].as_str().unwrap_or("");
                backends.iter().find(|b| b.key == name)
            }
        };
        if let Some(b) = target
            && !b.spec["servers"].is_null()
        {
            problem(format!(
                "pool {} ({}) declares inline `servers` and also has pool members ({} among them): a pool's servers are either inline or members; declare the backend with `servers: None` (`servers_managed_as_members()`) or drop the members",
                b.key, b.address, m.address
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_steps_show_the_gated_add_and_the_drained_removal() {
        let before = json!({"name": "p", "check_type": "HTTP", "servers": [
            {"name": "old", "status": "active"}, {"name": "keep", "status": "active"}]});
        let after = json!({"name": "p", "check_type": "HTTP", "servers": [
            {"name": "keep", "status": "active"}, {"name": "new", "status": "active"}]});
        let steps = PfSenseProvider::pool_steps(Some(&before), Some(&after));
        assert_eq!(
            steps,
            [
                "add new disabled",
                "apply HAProxy",
                "gate: new health check passes (HAProxy runtime API, show servers state)",
                "set new active, apply HAProxy, runtime state ready",
                "drain old (HAProxy runtime API)",
                "gate: old holds no sessions",
                "delete old",
                "apply HAProxy",
            ]
        );
        let members = json!({"name": "p", "check_type": "HTTP", "servers": null});
        assert!(PfSenseProvider::pool_steps(Some(&before), Some(&members)).is_empty());
        let unchecked = json!({"name": "p", "check_type": "none", "servers": [{"name": "n", "status": "active"}]});
        assert_eq!(
            PfSenseProvider::pool_steps(None, Some(&unchecked)),
            ["create pool p without servers, apply HAProxy"]
        );
    }

    #[test]
    fn member_steps_show_the_move_and_a_plain_delete_of_a_disabled_member() {
        let at = |port: u16, status: &str| {
            json!({"pool": "p", "name": "m", "address": "10.0.0.1", "port": port,
                   "ssl": false, "weight": 1, "status": status})
        };
        assert_eq!(
            PfSenseProvider::member_steps(Some(&at(1, "active")), Some(&at(2, "active"))),
            [
                "move m from 10.0.0.1:1: drain, wait for no sessions, delete, apply HAProxy",
                "add m at 10.0.0.1:2 disabled",
                "apply HAProxy",
                "gate: m health check passes (HAProxy runtime API, show servers state)",
                "set m active, apply HAProxy, runtime state ready",
            ]
        );
        assert_eq!(
            PfSenseProvider::member_steps(Some(&at(1, "disabled")), None),
            ["delete m", "apply HAProxy"]
        );
        let mut heavier = at(1, "active");
        heavier["weight"] = json!(5);
        assert!(
            PfSenseProvider::member_steps(Some(&at(1, "active")), Some(&heavier)).is_empty(),
            "a weight change is one in-place step"
        );
    }
}
