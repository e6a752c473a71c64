//! `hetzner_rrset`: the records of one name and type in a zone. Records are a keyed set
//! (by value) written with `set_records`; TTL via `change_ttl`; zone, name and type force a
//! replace. A record value may reference another resource's address (an A record = the
//! load balancer's IPv4), unknown until that resource exists.

use std::net::Ipv4Addr;

use cairn_core::{AttrRef, Field, FieldError, Marker, Observed, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Labels, Ops, split_labels, validate_labels};
use crate::client::{ApiError, Client};

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The value (for A records an IPv4, possibly a reference).
    pub value: Field<String>,
    /// Free text.
    pub comment: Option<String>,
}

impl Record {
    /// An A record from an address or a typed reference to one (e.g. `lb.ipv4()`).
    pub fn a(ip: impl Into<Field<Ipv4Addr>>) -> Self {
        let value = match ip.into() {
            Field::Known(ip) => Field::Known(ip.to_string()),
            Field::Ref(r) => {
                Field::Ref(AttrRef::new(r.raw().address.clone(), r.raw().attr.clone()))
            }
        };
        Record {
            value,
            comment: None,
        }
    }

    /// A record from a literal value.
    pub fn text(v: &str) -> Self {
        Record {
            value: Field::Known(v.into()),
            comment: None,
        }
    }
}

/// An rrset (`/zones/{zone}/rrsets`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RRSet {
    /// Zone name, e.g. `docfast.dev`.
    pub zone: String,
    /// Relative name, lowercase; `@` is the apex.
    pub name: String,
    /// Record type, e.g. `A`.
    #[serde(rename = "type")]
    pub kind: String,
    /// TTL (`None`: the zone's default).
    pub ttl: Option<u32>,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
    /// Records (keyed by value).
    pub records: Vec<Record>,
}

impl RRSet {
    /// An A rrset with one record.
    pub fn a(zone: &str, name: &str, ip: impl Into<Field<Ipv4Addr>>) -> Self {
        RRSet {
            zone: zone.into(),
            name: name.into(),
            kind: "A".into(),
            ttl: None,
            labels: Labels::new(),
            records: vec![Record::a(ip)],
        }
    }
}

const TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SOA", "SRV",
    "SVCB", "TLSA", "TXT",
];

impl Resource for RRSet {
    const KIND: &'static str = "hetzner_rrset";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        format!("{}/{}/{}", self.zone, self.name, self.kind)
    }

    fn schema() -> Schema {
        Schema {
            replace: &["zone", "name", "type"],
            computed: &["id"],
            // `records` is positional (written whole by `set_records`): values are often
            // references.
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if !super::zone::valid_domain(&self.zone) {
            e.push(FieldError::new(
                "zone",
                format!("{:?} is not a lowercase domain name", self.zone),
            ));
        }
        if self.name.is_empty() || self.name != self.name.to_lowercase() || self.name.ends_with('.')
        {
            e.push(FieldError::new(
                "name",
                "must be a relative lowercase name (`@` for the apex)",
            ));
        }
        if !TYPES.contains(&self.kind.as_str()) {
            e.push(FieldError::new(
                "type",
                format!("{:?} is not a supported record type", self.kind),
            ));
        }
        if self.records.is_empty() {
            e.push(FieldError::new("records", "must not be empty"));
        }
        if self.ttl.is_some_and(|t| t < 60) {
            e.push(FieldError::new("ttl", "must be at least 60"));
        }
        for (i, r) in self.records.iter().enumerate() {
            let Some(v) = r.value.known() else { continue };
            let ok = match self.kind.as_str() {
                "A" => v.parse::<Ipv4Addr>().is_ok(),
                "AAAA" => v.parse::<std::net::Ipv6Addr>().is_ok(),
                "CNAME" | "NS" | "PTR" => v.ends_with('.'),
                _ => !v.is_empty(),
            };
            if !ok {
                e.push(FieldError::new(
                    format!("records[{i}].value"),
                    format!("{v:?} is not a valid {} record value", self.kind),
                ));
            }
        }
        e.extend(validate_labels(&self.labels));
        e
    }
}

fn observe_one(zone_name: &str, r: &Value) -> Observed {
    let (labels, marker, _) = split_labels(&r["labels"]);
    let records: Vec<Value> = r["records"].as_array().into_iter().flatten()
        .map(|x| json!({"value": x["value"], "comment": if x["comment"].as_str().unwrap_or("").is_empty() { Value::Null } else { x["comment"].clone() }}))
        .collect();
    let name = r["name"].as_str().unwrap_or_default();
    let typ = r["type"].as_str().unwrap_or_default();
    Observed {
        key: format!("{zone_name}/{name}/{typ}"),
        value: json!({"zone": zone_name, "name": name, "type": typ, "ttl": r["ttl"], "labels": labels,
                      "records": records, "id": r["id"]}),
        marker,
        uses: vec![("hetzner_zone".into(), zone_name.into())],
    }
}

/// Observes rrsets: the zones named in `keys` plus the zones owned by `stack`, each listed
/// in full (rrsets per zone are few), filtered to declared keys and owned rrsets.
pub(crate) async fn observe_rrsets(
    c: &Client,
    keys: &[String],
    stack: &str,
) -> Result<Vec<Observed>, ApiError> {
    let mut zones: Vec<String> = keys
        .iter()
        .filter_map(|k| k.split('/').next().map(String::from))
        .collect();
    let owned = c
        .list_all(
            "/zones",
            "zones",
            &[(
                "label_selector".into(),
                format!("{}={stack}", super::STACK_LABEL),
            )],
        )
        .await?;
    zones.extend(
        owned
            .iter()
            .filter_map(|z| z["name"].as_str().map(String::from)),
    );
    zones.sort();
    zones.dedup();
    let lists = futures::future::join_all(zones.iter().map(|z| async move {
        match c
            .list_all(&format!("/zones/{z}/rrsets"), "rrsets", &[])
            .await
        {
            Ok(v) => Ok((z.clone(), v)),
            Err(e) if e.not_found() => Ok((z.clone(), Vec::new())),
            Err(e) => Err(e),
        }
    }))
    .await;
    let mut out = Vec::new();
    for l in lists {
        let (z, rrs) = l?;
        for r in rrs {
            let o = observe_one(&z, &r);
            let owned = o.marker.as_ref().is_some_and(|m: &Marker| m.stack == stack);
            if owned || keys.contains(&o.key) {
                out.push(o);
            }
        }
    }
    Ok(out)
}

fn path(d: &Value) -> String {
    format!(
        "/zones/{}/rrsets/{}/{}",
        d["zone"].as_str().unwrap_or(""),
        d["name"].as_str().unwrap_or(""),
        d["type"].as_str().unwrap_or("")
    )
}

fn records_body(d: &Value) -> Value {
    json!(
        d["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| json!({"value": r["value"], "comment": r["comment"].as_str().unwrap_or("")}))
            .collect::<Vec<_>>()
    )
}

/// Reads one rrset (`None` when absent).
pub(crate) async fn rrset_get(c: &Client, d: &Value) -> Result<Option<Value>, ApiError> {
    match c.get(&path(d), &[]).await {
        Ok(mut v) => Ok(Some(v["rrset"].take())),
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates an rrset (adopting one that appeared meanwhile) and converges it.
pub(crate) async fn rrset_create(
    c: &Client,
    d: &Value,
    labels: Value,
) -> Result<Observed, ApiError> {
    let ops = Ops { c };
    let zone = d["zone"].as_str().unwrap_or_default();
    let body = json!({"name": d["name"], "type": d["type"], "ttl": d["ttl"], "labels": labels, "records": records_body(d)});
    for attempt in 0..6 {
        if attempt > 0 && rrset_get(c, d).await?.is_some() {
            break;
        }
        match ops
            .post(&format!("/zones/{zone}/rrsets"), body.clone())
            .await
        {
            Ok(_) => break,
            Err(e) if e.code() == Some("uniqueness_error") => break,
            Err(e) if e.ambiguous() && attempt < 5 => continue,
            Err(e) => return Err(e),
        }
    }
    rrset_update(c, d, labels).await
}

/// Converges an existing rrset to the desired spec.
pub(crate) async fn rrset_update(
    c: &Client,
    d: &Value,
    labels: Value,
) -> Result<Observed, ApiError> {
    let ops = Ops { c };
    let zone = d["zone"].as_str().unwrap_or_default();
    for round in 0..6 {
        let cur = rrset_get(c, d).await?.ok_or_else(|| ApiError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!("rrset {} not found", path(d)),
            details: Value::Null,
        })?;
        let step = async {
            if cur["labels"] != labels {
                ops.put(&path(d), json!({"labels": labels})).await?;
            }
            let have: Vec<String> = cur["records"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| format!("{}|{}", r["value"], r["comment"]))
                .collect();
            let want: Vec<String> = records_body(d)
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| format!("{}|{}", r["value"], r["comment"]))
                .collect();
            // Ordered: `records` is diffed positionally, and set_records writes the declared order.
            if have != want {
                ops.post(
                    &format!("{}/actions/set_records", path(d)),
                    json!({"records": records_body(d)}),
                )
                .await?;
            }
            if cur["ttl"] != d["ttl"] {
                ops.post(
                    &format!("{}/actions/change_ttl", path(d)),
                    json!({"ttl": d["ttl"]}),
                )
                .await?;
            }
            Ok::<(), ApiError>(())
        };
        match step.await {
            Ok(()) => break,
            Err(e) if e.ambiguous() && round < 5 => continue,
            Err(e) => return Err(e),
        }
    }
    let cur = rrset_get(c, d).await?.unwrap_or(Value::Null);
    Ok(observe_one(zone, &cur))
}

/// Deletes an rrset (absent counts as done).
pub(crate) async fn rrset_delete(c: &Client, d: &Value) -> Result<(), ApiError> {
    Ops { c }.delete(&path(d)).await
}
