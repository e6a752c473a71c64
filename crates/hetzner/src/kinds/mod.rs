//! The Hetzner resource kinds, one file each, and what they share: labels and the
//! ownership marker, the write-only field tracking, and the operation helpers.

mod firewall;
mod load_balancer;
mod network;
mod primary_ip;
mod rrset;
mod server;
mod ssh_key;
mod zone;

pub use firewall::{ApplyTo, Firewall, FirewallAttrs, Rule};
pub use load_balancer::{
    Algorithm, HealthCheck, HealthCheckHttp, LbNetwork, LoadBalancer, LoadBalancerAttrs, Service,
    Target, TargetIp, TargetSelector, TargetServer,
};
pub use network::{Network, NetworkAttrs, Route, Subnet};
pub use primary_ip::{PrimaryIp, PrimaryIpAttrs};
pub use rrset::{RRSet, Record};
pub use server::{Server, ServerAttrs, ServerNetwork, ServerPublicNet};
pub use ssh_key::{SshKey, SshKeyAttrs};
pub use zone::{Zone, ZoneAttrs};

pub(crate) use firewall::OPS as FIREWALL_OPS;
pub(crate) use load_balancer::OPS as LOAD_BALANCER_OPS;
pub(crate) use network::OPS as NETWORK_OPS;
pub(crate) use primary_ip::OPS as PRIMARY_IP_OPS;
pub(crate) use rrset::{observe_rrsets, rrset_create, rrset_delete, rrset_update};
pub(crate) use server::OPS as SERVER_OPS;
pub(crate) use ssh_key::OPS as SSH_KEY_OPS;
pub(crate) use zone::OPS as ZONE_OPS;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use cairn_core::{FieldError, Marker, Origin};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{ApiError, Client, action_ids};

/// Labels: a string map, replaced whole on update.
pub type Labels = BTreeMap<String, String>;

/// Label holding the owning stack.
pub const STACK_LABEL: &str = "cairn.dev/stack";
/// Label holding the fingerprint of the last applied spec.
pub const FINGERPRINT_LABEL: &str = "cairn.dev/fingerprint";
/// Label saying whether cairn created the object or adopted it.
pub const ORIGIN_LABEL: &str = "cairn.dev/origin";
/// Prefix of every label cairn itself writes (never shown as user labels).
pub const CAIRN_PREFIX: &str = "cairn.dev/";

/// Splits API labels into user labels and the marker (cairn's own labels removed).
pub fn split_labels(v: &Value) -> (Value, Option<Marker>, Map<String, Value>) {
    let mut user = Map::new();
    let mut own = Map::new();
    for (k, val) in v.as_object().into_iter().flatten() {
        if k.starts_with(CAIRN_PREFIX) {
            own.insert(k.clone(), val.clone());
        } else {
            user.insert(k.clone(), val.clone());
        }
    }
    let marker = own.get(STACK_LABEL).and_then(Value::as_str).map(|s| {
        let mut m = Marker::adopted(
            s,
            own.get(FINGERPRINT_LABEL)
                .and_then(Value::as_str)
                .map(String::from),
        );
        // Without an origin label the marker predates it: adopted (released, not deleted).
        m.origin = own
            .get(ORIGIN_LABEL)
            .and_then(Value::as_str)
            .map_or(Origin::Adopted, Origin::parse);
        m
    });
    (Value::Object(user), marker, own)
}

/// The full label set to write: desired user labels, the marker, and extra cairn labels.
pub fn labels_with_marker(desired: &Value, marker: &Marker, extra: &[(&str, String)]) -> Value {
    let mut m = desired.as_object().cloned().unwrap_or_default();
    m.retain(|k, _| !k.starts_with(CAIRN_PREFIX));
    m.insert(STACK_LABEL.into(), marker.stack.clone().into());
    if let Some(f) = &marker.fingerprint {
        m.insert(FINGERPRINT_LABEL.into(), f.clone().into());
    }
    m.insert(ORIGIN_LABEL.into(), marker.origin.as_str().into());
    for (k, v) in extra {
        m.insert((*k).to_string(), v.clone().into());
    }
    Value::Object(m)
}

fn label_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Plan-time label checks (the API's rules; `cairn.dev/` is reserved for the marker).
pub fn validate_labels(labels: &Labels) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (k, v) in labels {
        let (prefix, name) = k
            .rsplit_once('/')
            .map_or((None, k.as_str()), |(p, n)| (Some(p), n));
        if !label_part_ok(name) || prefix.is_some_and(|p| !label_part_ok(p)) {
            out.push(FieldError::new(format!("labels.{k}"), "invalid label key"));
        }
        if k.starts_with("hetzner.cloud/") || k.starts_with(CAIRN_PREFIX) {
            out.push(FieldError::new(
                format!("labels.{k}"),
                "reserved label prefix",
            ));
        }
        if !v.is_empty() && !label_part_ok(v) {
            out.push(FieldError::new(
                format!("labels.{k}"),
                "label values are up to 63 alphanumerics, '-', '_' or '.'",
            ));
        }
    }
    out
}

/// Plan-time name checks.
pub fn validate_name(name: &str) -> Vec<FieldError> {
    if name.is_empty() || name.len() > 63 {
        vec![FieldError::new("name", "must be 1-63 characters")]
    } else {
        Vec::new()
    }
}

/// The 16-hex digest cairn stores for write-only fields.
pub fn short_digest(v: &Value) -> String {
    cairn_core::plan::digest(v)
}

/// Operation helpers over the client.
pub struct Ops<'a> {
    /// The client.
    pub c: &'a Client,
}

impl Ops<'_> {
    /// `POST` that changes something; waits for the actions it starts. Retried only when
    /// the API certainly did not apply it.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        let v = self
            .c
            .request(Method::POST, path, &[], Some(&body), false)
            .await?;
        self.c.wait_actions(&action_ids(&v)).await?;
        Ok(v)
    }

    /// `PUT` (idempotent, retried).
    pub async fn put(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        self.c
            .request(Method::PUT, path, &[], Some(&body), true)
            .await
    }

    /// `DELETE`, waiting for a returned action; 404 counts as done.
    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        match self.c.request(Method::DELETE, path, &[], None, true).await {
            Ok(v) => self.c.wait_actions(&action_ids(&v)).await,
            Err(e) if e.not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET` one object (`key` is the envelope key).
    pub async fn get(&self, path: &str, key: &str) -> Result<Value, ApiError> {
        let mut v = self.c.get(path, &[]).await?;
        Ok(v[key].take())
    }
}

/// A boxed future, for the per-kind operation tables.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// What the provider needs to know to run one collection-backed kind.
pub struct KindOps {
    /// API collection, e.g. `servers`.
    pub collection: &'static str,
    /// Envelope key of one object, e.g. `server`.
    pub singular: &'static str,
    /// API object → spec-shaped observed value (plus computed fields). The second argument
    /// is the declared spec of the same key, if any (for write-only fields).
    pub observe: fn(&Value, Option<&Value>) -> Value,
    /// Extra cairn labels to write for a desired spec (write-only field digests).
    pub extra_labels: fn(&Value) -> Vec<(&'static str, String)>,
    /// Creates the object from the desired spec and labels; returns its id.
    pub create: for<'a> fn(&'a Ops<'a>, &'a Value, Value) -> BoxFut<'a, u64>,
    /// Brings an existing object (current API value) to the desired spec and labels.
    pub converge: for<'a> fn(&'a Ops<'a>, &'a Value, &'a Value, Value) -> BoxFut<'a, ()>,
    /// Deletes the object (current API value).
    pub delete: for<'a> fn(&'a Ops<'a>, &'a Value) -> BoxFut<'a, ()>,
}

/// Reads a desired optional field: `None` when null (unmanaged).
pub fn managed(v: &Value) -> Option<&Value> {
    (!v.is_null()).then_some(v)
}

/// An empty JSON object.
pub fn empty() -> Value {
    json!({})
}

/// The id of an API object.
pub fn id_of(v: &Value) -> u64 {
    v["id"].as_u64().unwrap_or(0)
}

/// Checks a request body against the `hcloud` crate's model `T` and normalises it through a
/// round trip, so every body cairn sends has the spec's shape. A body that does not fit is a
/// bug in cairn and is reported before anything is sent.
pub fn typed<T: serde::Serialize + serde::de::DeserializeOwned>(
    body: Value,
) -> Result<Value, ApiError> {
    let name = std::any::type_name::<T>();
    let t: T = serde_json::from_value(body)
        .map_err(|e| ApiError::Config(format!("request body does not fit {name}: {e}")))?;
    serde_json::to_value(t).map_err(|e| ApiError::Config(format!("cannot serialise {name}: {e}")))
}

/// Lists whose item identities are usually references, with their identity fields: the
/// provider keeps them in declared order when observing.
pub fn ref_lists(kind: &str) -> &'static [(&'static str, &'static [&'static str])] {
    match kind {
        "hetzner_load_balancer" => &[
            ("targets", load_balancer::TARGET_KEY),
            ("private_net", &["network"]),
        ],
        "hetzner_firewall" => &[("apply_to", firewall::APPLY_KEY)],
        "hetzner_server" => &[("networks", &["network"])],
        _ => &[],
    }
}
