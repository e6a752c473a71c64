//! The cairn [`Provider`] for Hetzner Cloud: bulk observe per kind, create/update/delete that
//! converge from a fresh read (so a lost response is repaired, never duplicated), and
//! plan-time cross-resource validation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_core::value::RawRef;
use cairn_core::{
    Change, Declared, Diagnostic, FieldError, ObserveRequest, Observed, Provider, ProviderError,
};
use serde_json::Value;

use crate::client::{ApiError, Client, ClientConfig};
use crate::kinds::{self, KindOps, Ops, STACK_LABEL, id_of, labels_with_marker, split_labels};

/// Errors codes after which a converge round is simply re-read and retried.
const RECONVERGE: &[&str] = &[
    "target_already_defined",
    "server_already_attached",
    "load_balancer_already_attached",
    "firewall_already_applied",
    "firewall_already_removed",
    "source_port_already_used",
    "conflict",
    "locked",
    "rate_limit_exceeded",
    "unavailable",
];

/// The Hetzner provider.
pub struct HetznerProvider {
    client: Arc<Client>,
    declared: Mutex<HashMap<(String, String), Value>>,
    /// Declared address → (kind, key), from `validate`.
    addresses: Mutex<HashMap<String, (String, String)>>,
    /// (kind, key) → id, from every observation and change.
    ids: Mutex<HashMap<(String, String), u64>>,
    concurrency: usize,
}

impl std::fmt::Debug for HetznerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HetznerProvider")
            .field("endpoint", &self.client.config().endpoint)
            .finish_non_exhaustive()
    }
}

fn ops_for(kind: &str) -> Option<&'static KindOps> {
    Some(match kind {
        "hetzner_ssh_key" => &kinds::SSH_KEY_OPS,
        "hetzner_network" => &kinds::NETWORK_OPS,
        "hetzner_server" => &kinds::SERVER_OPS,
        "hetzner_primary_ip" => &kinds::PRIMARY_IP_OPS,
        "hetzner_load_balancer" => &kinds::LOAD_BALANCER_OPS,
        "hetzner_firewall" => &kinds::FIREWALL_OPS,
        "hetzner_zone" => &kinds::ZONE_OPS,
        _ => return None,
    })
}

fn perr(op: String, e: ApiError) -> ProviderError {
    e.into_provider(op)
}

impl HetznerProvider {
    /// A provider over a client.
    pub fn new(cfg: ClientConfig) -> Result<Self, ApiError> {
        Ok(HetznerProvider {
            client: Arc::new(Client::new(cfg)?),
            declared: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
            concurrency: 8,
        })
    }

    /// From `HCLOUD_TOKEN` / `HCLOUD_ENDPOINT`.
    pub fn from_env() -> Result<Self, ApiError> {
        Self::new(ClientConfig::from_env()?)
    }

    /// Sets how many changes run at once.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The HTTP client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A gate probe that passes when every target of load balancer `name` is healthy.
    pub fn lb_targets_healthy(&self, name: &str) -> crate::gate::LbTargetsHealthy {
        crate::gate::LbTargetsHealthy::new(self.client.clone(), name)
    }

    fn declared_spec(&self, kind: &str, key: &str) -> Option<Value> {
        self.declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(kind.to_string(), key.to_string()))
            .cloned()
    }

    async fn find_by_name(&self, ops: &KindOps, name: &str) -> Result<Option<Value>, ApiError> {
        let v = self
            .client
            .list_all(
                &format!("/{}", ops.collection),
                ops.collection,
                &[("name".into(), name.into())],
            )
            .await?;
        Ok(v.into_iter().next())
    }

    async fn get_api(&self, ops: &KindOps, id: u64) -> Result<Option<Value>, ApiError> {
        match self
            .client
            .get(&format!("/{}/{id}", ops.collection), &[])
            .await
        {
            Ok(mut v) => Ok(Some(v[ops.singular].take())),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn to_observed(
        &self,
        kind: &str,
        ops: &KindOps,
        api: &Value,
        desired: Option<&Value>,
    ) -> Observed {
        let key = api["name"].as_str().unwrap_or_default().to_string();
        if let Some(d) = desired {
            self.declared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((kind.to_string(), key.clone()), d.clone());
        }
        if let Some(id) = api["id"].as_u64() {
            lock(&self.ids).insert((kind.to_string(), key.clone()), id);
        }
        let declared = self.declared_spec(kind, &key);
        let (_, marker, _) = split_labels(&api["labels"]);
        Observed {
            key,
            value: (ops.observe)(api, declared.as_ref()),
            marker,
            uses: Vec::new(),
        }
    }

    /// The id a declared reference (`{"$ref": …attr "id"}`) or literal id stands for.
    async fn resolve_id(&self, raw: &RawRef) -> Option<u64> {
        if raw.attr != "id" {
            return None;
        }
        let (kind, key) = lock(&self.addresses).get(&raw.address.0).cloned()?;
        if let Some(id) = lock(&self.ids).get(&(kind.clone(), key.clone())) {
            return Some(*id);
        }
        let ops = ops_for(&kind)?;
        let found = self.find_by_name(ops, &key).await.ok().flatten()?;
        let id = found["id"].as_u64()?;
        lock(&self.ids).insert((kind, key), id);
        Some(id)
    }

    /// Puts observed list items whose identities are references (LB targets, firewall
    /// `apply_to`, server networks) in the declared order, so the engine's positional diff
    /// compares like with like. Items not declared keep their API order at the end.
    async fn reorder(&self, kind: &str, o: &mut Observed) {
        let Some(declared) = self.declared_spec(kind, &o.key) else {
            return;
        };
        for (list, key) in crate::kinds::ref_lists(kind) {
            let (Some(d_items), Some(o_items)) =
                (declared[*list].as_array(), o.value[*list].as_array())
            else {
                continue;
            };
            if o_items.len() < 2 {
                continue;
            }
            let mut resolved: HashMap<RawRef, Value> = HashMap::new();
            for d in d_items {
                for (_, r) in cairn_core::value::collect_refs(d) {
                    if let std::collections::hash_map::Entry::Vacant(e) = resolved.entry(r.clone())
                        && let Some(id) = self.resolve_id(&r).await
                    {
                        e.insert(id.into());
                    }
                }
            }
            let want: Vec<String> = d_items
                .iter()
                .map(|d| {
                    let mut d = d.clone();
                    cairn_core::value::substitute_refs(&mut d, &|r| resolved.get(r).cloned());
                    cairn_core::diff::item_key(&d, key)
                })
                .collect();
            let mut rest: Vec<Value> = o_items.clone();
            let mut ordered = Vec::with_capacity(rest.len());
            for k in &want {
                if let Some(pos) = rest
                    .iter()
                    .position(|x| cairn_core::diff::item_key(x, key) == *k)
                {
                    ordered.push(rest.remove(pos));
                }
            }
            ordered.extend(rest);
            o.value[*list] = Value::Array(ordered);
        }
    }

    async fn converge(
        &self,
        ops: &KindOps,
        id: u64,
        desired: &Value,
        labels: &Value,
    ) -> Result<Value, ApiError> {
        let o = Ops { c: &self.client };
        let mut last = None;
        for _round in 0..8 {
            let cur = self.get_api(ops, id).await?.ok_or_else(|| ApiError::Api {
                status: 404,
                code: "not_found".into(),
                message: format!("{} {id} disappeared", ops.singular),
                details: Value::Null,
            })?;
            match (ops.converge)(&o, &cur, desired, labels.clone()).await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) if e.ambiguous() || e.code().is_some_and(|c| RECONVERGE.contains(&c)) => {
                    tracing::debug!(%e, "re-reading {} {id} and converging again", ops.singular);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        self.get_api(ops, id).await?.ok_or_else(|| ApiError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!("{} {id} disappeared", ops.singular),
            details: Value::Null,
        })
    }

    async fn create_kind(
        &self,
        ops: &KindOps,
        change: &Change<'_>,
        desired: &Value,
    ) -> Result<Value, ApiError> {
        let labels = labels_with_marker(
            &desired["labels"],
            change.marker,
            &(ops.extra_labels)(desired),
        );
        let o = Ops { c: &self.client };
        let mut id = None;
        for attempt in 0..6 {
            if attempt > 0
                && let Some(found) = self.find_by_name(ops, change.key).await?
            {
                // A previous attempt did happen (its response was lost): adopt it.
                id = Some(id_of(&found));
                break;
            }
            match (ops.create)(&o, desired, labels.clone()).await {
                Ok(i) => {
                    id = Some(i);
                    break;
                }
                Err(e) if e.code() == Some("uniqueness_error") => {
                    if let Some(found) = self.find_by_name(ops, change.key).await? {
                        id = Some(id_of(&found));
                        break;
                    }
                    return Err(e);
                }
                Err(e) if e.ambiguous() && attempt < 5 => {
                    tracing::debug!(%e, "create {} {} outcome unknown; re-observing by name", ops.singular, change.key);
                }
                Err(e) => return Err(e),
            }
        }
        let id = id.ok_or_else(|| {
            ApiError::Transport(format!("could not create {} {}", ops.singular, change.key))
        })?;
        self.converge(ops, id, desired, &labels).await
    }
}

#[async_trait]
impl Provider for HetznerProvider {
    fn name(&self) -> &str {
        "hetzner"
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn observe(&self, req: ObserveRequest<'_>) -> Result<Vec<Observed>, ProviderError> {
        let op = || format!("observe {}", req.kind);
        if req.kind == "hetzner_rrset" {
            return kinds::observe_rrsets(&self.client, req.keys, req.stack)
                .await
                .map_err(|e| perr(op(), e));
        }
        let ops = ops_for(req.kind).ok_or_else(|| ProviderError::new(op(), "unknown kind"))?;
        let coll = format!("/{}", ops.collection);
        let sel = vec![(
            "label_selector".to_string(),
            format!("{STACK_LABEL}={}", req.stack),
        )];
        let mut found = self
            .client
            .list_all(&coll, ops.collection, &sel)
            .await
            .map_err(|e| perr(op(), e))?;
        let names: std::collections::HashSet<String> = found
            .iter()
            .filter_map(|o| o["name"].as_str().map(String::from))
            .collect();
        let missing: Vec<&String> = req.keys.iter().filter(|k| !names.contains(*k)).collect();
        if missing.len() <= 3 {
            let got = futures::future::join_all(missing.iter().map(|k| {
                let coll = &coll;
                async move {
                    self.client
                        .get(coll, &[("name".into(), k.to_string())])
                        .await
                }
            }))
            .await;
            for g in got {
                let mut v = g.map_err(|e| perr(op(), e))?;
                if let Value::Array(items) = v[ops.collection].take() {
                    found.extend(items);
                }
            }
        } else {
            let wanted: std::collections::HashSet<&str> =
                missing.iter().map(|s| s.as_str()).collect();
            let all = self
                .client
                .list_all(&coll, ops.collection, &[])
                .await
                .map_err(|e| perr(op(), e))?;
            found.extend(
                all.into_iter()
                    .filter(|o| o["name"].as_str().is_some_and(|n| wanted.contains(n))),
            );
        }
        let mut out: Vec<Observed> = found
            .iter()
            .map(|api| self.to_observed(req.kind, ops, api, None))
            .collect();
        for o in &mut out {
            self.reorder(req.kind, o).await;
        }
        Ok(out)
    }

    async fn create(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        let op = || format!("create {} ({})", change.address, change.kind);
        let desired = change
            .desired
            .ok_or_else(|| ProviderError::new(op(), "no desired spec"))?;
        if change.kind == "hetzner_rrset" {
            let labels = labels_with_marker(&desired["labels"], change.marker, &[]);
            return kinds::rrset_create(&self.client, desired, labels)
                .await
                .map(|o| o.value)
                .map_err(|e| perr(op(), e));
        }
        let ops = ops_for(change.kind).ok_or_else(|| ProviderError::new(op(), "unknown kind"))?;
        let api = self
            .create_kind(ops, &change, desired)
            .await
            .map_err(|e| perr(op(), e))?;
        {
            let mut o = self.to_observed(change.kind, ops, &api, Some(desired));
            self.reorder(change.kind, &mut o).await;
            Ok(o.value)
        }
    }

    async fn update(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        let op = || format!("update {} ({})", change.address, change.kind);
        let desired = change
            .desired
            .ok_or_else(|| ProviderError::new(op(), "no desired spec"))?;
        if change.kind == "hetzner_rrset" {
            let labels = labels_with_marker(&desired["labels"], change.marker, &[]);
            return kinds::rrset_update(&self.client, desired, labels)
                .await
                .map(|o| o.value)
                .map_err(|e| perr(op(), e));
        }
        let ops = ops_for(change.kind).ok_or_else(|| ProviderError::new(op(), "unknown kind"))?;
        let id = change
            .prior
            .and_then(|p| p.value["id"].as_u64())
            .ok_or_else(|| ProviderError::new(op(), "no prior id"))?;
        let labels = labels_with_marker(
            &desired["labels"],
            change.marker,
            &(ops.extra_labels)(desired),
        );
        let api = self
            .converge(ops, id, desired, &labels)
            .await
            .map_err(|e| perr(op(), e))?;
        {
            let mut o = self.to_observed(change.kind, ops, &api, Some(desired));
            self.reorder(change.kind, &mut o).await;
            Ok(o.value)
        }
    }

    async fn delete(&self, change: Change<'_>) -> Result<(), ProviderError> {
        let op = || format!("delete {} ({})", change.address, change.kind);
        let prior = change
            .prior
            .ok_or_else(|| ProviderError::new(op(), "nothing observed to delete"))?;
        if change.kind == "hetzner_rrset" {
            return kinds::rrset_delete(&self.client, &prior.value)
                .await
                .map_err(|e| perr(op(), e));
        }
        let ops = ops_for(change.kind).ok_or_else(|| ProviderError::new(op(), "unknown kind"))?;
        let id = prior.value["id"]
            .as_u64()
            .ok_or_else(|| ProviderError::new(op(), "no id"))?;
        let o = Ops { c: &self.client };
        for attempt in 0..6 {
            let Some(cur) = self.get_api(ops, id).await.map_err(|e| perr(op(), e))? else {
                return Ok(());
            };
            match (ops.delete)(&o, &cur).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if attempt < 5
                        && (e.ambiguous() || e.code().is_some_and(|c| RECONVERGE.contains(&c))) =>
                {
                    continue;
                }
                Err(e) => return Err(perr(op(), e)),
            }
        }
        Ok(())
    }

    fn validate(&self, declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        {
            let mut cache = self.declared.lock().unwrap_or_else(|p| p.into_inner());
            let mut addrs = lock(&self.addresses);
            for d in declared {
                cache.insert((d.kind.to_string(), d.key.to_string()), d.spec.clone());
                addrs.insert(d.address.0.clone(), (d.kind.to_string(), d.key.to_string()));
            }
        }
        crate::validate::cross_check(declared)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Re-exported for the validation module.
pub(crate) fn ref_address(v: &Value) -> Option<String> {
    RawRef::from_marker(v).map(|r| r.address.0)
}

/// A diagnostic for a resource and field.
pub(crate) fn diag(d: &Declared<'_>, field: String, message: String) -> Diagnostic {
    Diagnostic {
        address: d.address.clone(),
        error: FieldError::new(field, message),
    }
}
