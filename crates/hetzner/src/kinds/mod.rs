//! The Hetzner resource kinds, one file each, and what they share: labels and the
//! ownership marker, small wire types, and the request helpers ([`Ops`]). Collection-backed
//! kinds implement `Collection` (the `collection` module); the kit's `Kind` comes from that.

pub(crate) mod collection;

cairn_core::kinds! {
    context: Hetzner;
    mod ssh_key::SshKeys => { SshKey, SshKeyAttrs, SshKeyObserved };
    mod network::Networks => {
        Network, NetworkAttachment, NetworkAttrs, NetworkObserved, Route, Subnet, SubnetType,
    };
    mod server::Servers => { Server, ServerAttrs, ServerNetwork, ServerObserved, ServerPublicNet };
    mod primary_ip::PrimaryIps => { IpType, PrimaryIp, PrimaryIpAttrs, PrimaryIpObserved };
    mod load_balancer::LoadBalancers => {
        Algorithm, AlgorithmType, HealthCheck, HealthCheckHttp, HealthStatus, LbNetwork, LbProtocol,
        LoadBalancer, LoadBalancerAttrs, LoadBalancerObserved, Service, Target, TargetIp,
        TargetObserved, TargetSelector, TargetServer, TargetType,
    };
    mod firewall::Firewalls => { ApplyTo, ApplyToType, Direction, Firewall, FirewallAttrs, Rule, RuleProtocol };
    mod zone::Zones => { Zone, ZoneAttrs, ZoneMode, ZoneObserved };
    mod rrset::RRSets => { RRSet, RRSetObserved, Record, RecordType };
    mod volume::Volumes => { Volume, VolumeAttrs, VolumeFormat, VolumeObserved };
}

use std::collections::BTreeMap;

use cairn_core::{FieldError, Marker, Origin};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{ApiError, Client, action_ids};
use crate::provider::Hetzner;

/// Labels: a string map, replaced whole on update.
pub type Labels = BTreeMap<String, String>;

/// Label holding the owning stack.
pub const STACK_LABEL: &str = "cairn.dev/stack";
/// Label holding the fingerprint of the last applied spec.
pub const FINGERPRINT_LABEL: &str = "cairn.dev/fingerprint";
/// Label saying whether cairn created the object or adopted it (`created` / `adopted`).
pub const ORIGIN_LABEL: &str = "cairn.dev/origin";
/// Prefix of every label cairn itself writes (never shown as user labels).
pub const CAIRN_PREFIX: &str = "cairn.dev/";

/// Splits API labels into user labels, the marker, and cairn's own labels.
pub fn split_labels(all: &Labels) -> (Labels, Option<Marker>, Labels) {
    let (own, user): (Labels, Labels) = all
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| k.starts_with(CAIRN_PREFIX));
    let marker = own.get(STACK_LABEL).map(|s| Marker {
        stack: s.clone(),
        fingerprint: own.get(FINGERPRINT_LABEL).cloned(),
        origin: own
            .get(ORIGIN_LABEL)
            .map_or(Origin::Adopted, |o| Origin::parse(o)),
        copied_from: None,
    });
    (user, marker, own)
}

/// The full label set to write: desired user labels, the marker, and extra cairn labels.
pub fn labels_with_marker(desired: &Labels, marker: &Marker, extra: &[(&str, String)]) -> Labels {
    let mut m: Labels = desired
        .iter()
        .filter(|(k, _)| !k.starts_with(CAIRN_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    m.insert(STACK_LABEL.into(), marker.stack.clone());
    if let Some(f) = &marker.fingerprint {
        m.insert(FINGERPRINT_LABEL.into(), f.clone());
    }
    m.insert(ORIGIN_LABEL.into(), marker.origin.as_str().into());
    for (k, v) in extra {
        m.insert((*k).to_string(), v.clone());
    }
    m
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

/// `{"name": …}` as the API nests locations, types and images.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(crate) struct NameRef {
    pub name: String,
}

/// `{"id": …}` as the API nests references to other objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
pub(crate) struct IdRef {
    pub id: u64,
}

/// A private network attachment as the API reports it (servers and load balancers).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(crate) struct ApiPrivateNet {
    pub network: u64,
    pub ip: Option<std::net::Ipv4Addr>,
}

/// Body of the `attach_to_network` / `detach_from_network` actions.
#[derive(Debug, Serialize)]
pub(crate) struct NetworkAction {
    pub network: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
}

/// Body of `PUT /{collection}/{id}` for kinds whose name and labels change in place.
#[derive(Debug, Serialize)]
pub(crate) struct NameLabels<'a> {
    pub name: &'a str,
    pub labels: &'a Labels,
}

/// Request helpers over the client: typed bodies in, JSON envelopes out, actions awaited.
pub struct Ops<'a> {
    /// The client.
    pub c: &'a Client,
}

/// A request body: the typed value serialised, with unset (null) fields left out, as the
/// API expects optional fields to be absent rather than null.
fn body_of<B: Serialize>(b: &B) -> Result<Value, ApiError> {
    let mut v =
        serde_json::to_value(b).map_err(|e| ApiError::Config(format!("request body: {e}")))?;
    strip_nulls(&mut v);
    Ok(v)
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Reads the object under `key` of a response envelope.
pub(crate) fn envelope<T: DeserializeOwned>(mut v: Value, key: &str) -> Result<T, ApiError> {
    let inner = v.get_mut(key).map(Value::take).unwrap_or(Value::Null);
    serde_json::from_value(inner)
        .map_err(|e| ApiError::Transport(format!("unexpected {key} in the response: {e}")))
}

impl Ops<'_> {
    /// `POST` that changes something; waits for the actions it starts. Retried only when
    /// the API certainly did not apply it.
    pub async fn post<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, ApiError> {
        let v = self
            .c
            .request(Method::POST, path, &[], Some(&body_of(body)?), false)
            .await?;
        self.c.wait_actions(&action_ids(&v)).await?;
        Ok(v)
    }

    /// `PUT` (idempotent, retried).
    pub async fn put<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, ApiError> {
        self.c
            .request(Method::PUT, path, &[], Some(&body_of(body)?), true)
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

    /// `GET` one object (`key` is the envelope key); `None` on 404.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.c.get(path, &[]).await {
            Ok(v) => envelope(v, key).map(Some),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every object of a collection matching `query` (all pages), typed.
    pub async fn list<T: DeserializeOwned>(
        &self,
        collection: &str,
        query: &[(String, String)],
    ) -> Result<Vec<T>, ApiError> {
        self.c
            .list_all(&format!("/{collection}"), collection, query)
            .await?
            .into_iter()
            .map(|v| {
                serde_json::from_value(v).map_err(|e| {
                    ApiError::Transport(format!("unexpected object in /{collection}: {e}"))
                })
            })
            .collect()
    }
}

/// Body of `PUT` that replaces only the labels.
#[derive(Debug, Serialize)]
pub(crate) struct LabelsOnly<'a> {
    pub labels: &'a Labels,
}

/// A request body with no fields.
#[derive(Debug, Serialize)]
pub(crate) struct Empty {}
