//! `hetzner_rrset`: the records of one name and type in a zone. Records are written whole
//! with `set_records` in declared order (they are compared positionally); TTL via
//! `change_ttl`; zone, name and type force a replace. A record value may reference another
//! resource's address (an A record = the load balancer's IPv4), unknown until that resource
//! exists. RRsets are listed per zone, not by label.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, NoStep, Op, Query};
use cairn_core::{Address, AttrRef, Field, FieldError, KeyRef, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::collection::reconverge;
use super::zone::Zone;
use super::{
    Labels, LabelsOnly, Ops, STACK_LABEL, labels_with_marker, split_labels, validate_labels,
};
use crate::client::ApiError;
use crate::provider::Hetzner;

/// A DNS record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    AAAA,
    /// Certification authority authorisation.
    CAA,
    /// Canonical name.
    CNAME,
    /// Delegation signer.
    DS,
    /// Host information.
    HINFO,
    /// HTTPS service binding.
    HTTPS,
    /// Mail exchanger.
    MX,
    /// Name server.
    NS,
    /// Pointer.
    PTR,
    /// Responsible person.
    RP,
    /// Start of authority.
    SOA,
    /// Service locator.
    SRV,
    /// Service binding.
    SVCB,
    /// TLS authentication.
    TLSA,
    /// Text.
    TXT,
}

impl RecordType {
    /// The type as the API spells it.
    pub fn as_str(self) -> &'static str {
        use RecordType::*;
        match self {
            A => "A",
            AAAA => "AAAA",
            CAA => "CAA",
            CNAME => "CNAME",
            DS => "DS",
            HINFO => "HINFO",
            HTTPS => "HTTPS",
            MX => "MX",
            NS => "NS",
            PTR => "PTR",
            RP => "RP",
            SOA => "SOA",
            SRV => "SRV",
            SVCB => "SVCB",
            TLSA => "TLSA",
            TXT => "TXT",
        }
    }
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The value (for A records an IPv4, possibly a reference).
    pub value: Field<String>,
    /// Free text.
    #[serde(default)]
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
    /// The zone: a declared zone's handle (`&zone`, which orders the rrset after it) or
    /// the name of a zone that exists already, e.g. `docfast.dev`.
    pub zone: KeyRef<Zone>,
    /// Relative name, lowercase; `@` is the apex.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub kind: RecordType,
    /// TTL (`None`: the zone's default).
    pub ttl: Option<u32>,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
    /// Records (in declared order).
    pub records: Vec<Record>,
}

impl RRSet {
    /// An rrset of `kind` named `name` (relative, `@` for the apex) in `zone` (a declared
    /// zone's handle or an existing zone's name), with no records yet: add them with
    /// [`RRSet::record`] or [`RRSet::value`].
    pub fn new(zone: impl Into<KeyRef<Zone>>, name: &str, kind: RecordType) -> Self {
        RRSet {
            zone: zone.into(),
            name: name.into(),
            kind,
            ttl: None,
            labels: Labels::new(),
            records: Vec::new(),
        }
    }

    /// An A rrset with one record: an address or a typed reference to one (`srv.ipv4()`).
    pub fn a(zone: impl Into<KeyRef<Zone>>, name: &str, ip: impl Into<Field<Ipv4Addr>>) -> Self {
        RRSet::new(zone, name, RecordType::A).record(Record::a(ip))
    }

    /// Adds a record.
    pub fn record(mut self, record: Record) -> Self {
        self.records.push(record);
        self
    }

    /// Adds a record with a literal value, e.g. `"10 mail.example.com."` for MX.
    pub fn value(self, value: &str) -> Self {
        self.record(Record::text(value))
    }

    /// Sets the TTL (default: the zone's).
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl = Some(seconds);
        self
    }

    /// Adds a user label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    fn path(&self) -> String {
        format!("/zones/{}/rrsets/{}/{}", self.zone, self.name, self.kind)
    }
}

/// An observed rrset: the spec plus its id (`name/TYPE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RRSetObserved {
    /// The spec fields as the API reports them.
    #[serde(flatten)]
    pub spec: RRSet,
    /// Its id, `name/TYPE`.
    pub id: String,
}

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
            // `records` is positional (written whole by `set_records`).
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if !super::zone::valid_domain(self.zone.key()) {
            e.push(FieldError::new(
                "zone",
                format!("{:?} is not a lowercase domain name", self.zone.key()),
            ));
        }
        if self.name.is_empty() || self.name != self.name.to_lowercase() || self.name.ends_with('.')
        {
            e.push(FieldError::new(
                "name",
                "must be a relative lowercase name (`@` for the apex)",
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
            let ok = match self.kind {
                RecordType::A => v.parse::<Ipv4Addr>().is_ok(),
                RecordType::AAAA => v.parse::<std::net::Ipv6Addr>().is_ok(),
                RecordType::CNAME | RecordType::NS | RecordType::PTR => v.ends_with('.'),
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

    fn key_refs(&self) -> Vec<(String, Address)> {
        self.zone
            .address()
            .map(|a| ("zone".to_string(), a.clone()))
            .into_iter()
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
struct ApiRecord {
    value: String,
    #[serde(default)]
    comment: Option<String>,
}

/// An rrset as the API returns it.
#[derive(Debug, Clone, Deserialize)]
struct ApiRRSet {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: RecordType,
    #[serde(default)]
    ttl: Option<u32>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    records: Vec<ApiRecord>,
}

#[derive(Debug, Clone, Deserialize)]
struct ApiZoneName {
    name: String,
}

#[derive(Serialize, PartialEq)]
struct RecordBody<'a> {
    value: &'a str,
    comment: &'a str,
}

#[derive(Serialize)]
struct CreateRRSet<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: RecordType,
    ttl: Option<u32>,
    labels: &'a Labels,
    records: Vec<RecordBody<'a>>,
}

#[derive(Serialize)]
struct SetRecords<'a> {
    records: Vec<RecordBody<'a>>,
}

#[derive(Serialize)]
struct Ttl {
    ttl: Option<u32>,
}

fn observed(zone: &str, r: &ApiRRSet) -> RRSetObserved {
    RRSetObserved {
        spec: RRSet {
            zone: zone.into(),
            name: r.name.clone(),
            kind: r.kind,
            ttl: r.ttl,
            labels: split_labels(&r.labels).0,
            records: r
                .records
                .iter()
                .map(|x| Record {
                    value: Field::Known(x.value.clone()),
                    comment: x.comment.clone().filter(|c| !c.is_empty()),
                })
                .collect(),
        },
        id: r.id.clone(),
    }
}

fn records_body(d: &RRSet) -> Vec<RecordBody<'_>> {
    d.records
        .iter()
        .map(|r| RecordBody {
            value: r.value.known().map(String::as_str).unwrap_or_default(),
            comment: r.comment.as_deref().unwrap_or(""),
        })
        .collect()
}

async fn read(ops: &Ops<'_>, d: &RRSet) -> Result<Option<ApiRRSet>, ApiError> {
    ops.get::<ApiRRSet>(&d.path(), "rrset").await
}

/// Converges an existing rrset to the desired spec from fresh reads.
async fn converge(ops: &Ops<'_>, d: &RRSet, labels: &Labels) -> Result<RRSetObserved, ApiError> {
    let not_found = || ApiError::Api {
        status: 404,
        code: "not_found".into(),
        message: format!("rrset {} not found", d.path()),
        details: serde_json::Value::Null,
    };
    for round in 0..6 {
        let cur = read(ops, d).await?.ok_or_else(not_found)?;
        let step = async {
            if cur.labels != *labels {
                ops.put(&d.path(), &LabelsOnly { labels }).await?;
            }
            let have: Vec<RecordBody<'_>> = cur
                .records
                .iter()
                .map(|r| RecordBody {
                    value: &r.value,
                    comment: r.comment.as_deref().unwrap_or(""),
                })
                .collect();
            // Ordered: `records` is diffed positionally, and set_records writes the declared order.
            if have != records_body(d) {
                let body = SetRecords {
                    records: records_body(d),
                };
                ops.post(&format!("{}/actions/set_records", d.path()), &body)
                    .await?;
            }
            if cur.ttl != d.ttl {
                ops.post(
                    &format!("{}/actions/change_ttl", d.path()),
                    &Ttl { ttl: d.ttl },
                )
                .await?;
            }
            Ok::<(), ApiError>(())
        };
        match step.await {
            Ok(()) => break,
            Err(e) if reconverge(&e) && round < 5 => continue,
            Err(e) => return Err(e),
        }
    }
    let cur = read(ops, d).await?.ok_or_else(not_found)?;
    Ok(observed(d.zone.key(), &cur))
}

/// The `hetzner_rrset` kind.
pub(crate) struct RRSets;

#[async_trait]
impl Kind<Hetzner> for RRSets {
    type Spec = RRSet;
    type Observed = RRSetObserved;
    type Step = NoStep;

    /// The zones named in the keys plus the zones owned by the stack, each listed in full
    /// (rrsets per zone are few), filtered to declared keys and owned rrsets.
    async fn observe(
        &self,
        ctx: &Hetzner,
        q: Query<'_>,
    ) -> Result<Vec<Found<RRSetObserved>>, ApiError> {
        let ops = ctx.ops();
        let mut zones: Vec<String> = q
            .keys
            .iter()
            .filter_map(|k| k.split('/').next().map(String::from))
            .collect();
        let sel = [(
            "label_selector".into(),
            format!("{STACK_LABEL}={}", q.stack),
        )];
        zones.extend(
            ops.list::<ApiZoneName>("zones", &sel)
                .await?
                .into_iter()
                .map(|z| z.name),
        );
        zones.sort();
        zones.dedup();
        let lists = futures::future::join_all(zones.iter().map(|z| {
            let ops = &ops;
            async move {
                let path = format!("/zones/{z}/rrsets");
                match ops.c.list_all(&path, "rrsets", &[]).await {
                    Ok(v) => Ok((z, v)),
                    Err(e) if e.not_found() => Ok((z, Vec::new())),
                    Err(e) => Err(e),
                }
            }
        }))
        .await;
        let mut out = Vec::new();
        for l in lists {
            let (z, rrs) = l?;
            for r in rrs {
                let r: ApiRRSet = serde_json::from_value(r)
                    .map_err(|e| ApiError::Transport(format!("unexpected rrset: {e}")))?;
                let o = observed(z, &r);
                let key = o.spec.key();
                let (_, marker, _) = split_labels(&r.labels);
                let owned = marker.as_ref().is_some_and(|m| m.stack == q.stack);
                if owned || q.keys.contains(&key) {
                    let mut f = Found::new(key, o, marker);
                    f.uses = vec![(super::Zone::KIND.into(), z.clone())];
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        ctx: &Hetzner,
        d: &RRSet,
        op: Op<'_, NoStep>,
    ) -> Result<RRSetObserved, ApiError> {
        let ops = ctx.ops();
        let labels = labels_with_marker(&d.labels, op.marker, &[]);
        let body = CreateRRSet {
            name: &d.name,
            kind: d.kind,
            ttl: d.ttl,
            labels: &labels,
            records: records_body(d),
        };
        for attempt in 0..6 {
            if attempt > 0 && read(&ops, d).await?.is_some() {
                break;
            }
            match ops.post(&format!("/zones/{}/rrsets", d.zone), &body).await {
                Ok(_) => break,
                Err(e) if e.code() == Some("uniqueness_error") => break,
                Err(e) if e.ambiguous() && attempt < 5 => continue,
                Err(e) => return Err(e),
            }
        }
        converge(&ops, d, &labels).await
    }

    async fn update(
        &self,
        ctx: &Hetzner,
        _prior: &RRSetObserved,
        d: &RRSet,
        op: Op<'_, NoStep>,
    ) -> Result<RRSetObserved, ApiError> {
        let labels = labels_with_marker(&d.labels, op.marker, &[]);
        converge(&ctx.ops(), d, &labels).await
    }

    async fn delete(
        &self,
        ctx: &Hetzner,
        prior: &RRSetObserved,
        _op: Op<'_, NoStep>,
    ) -> Result<(), ApiError> {
        ctx.ops().delete(&prior.spec.path()).await
    }

    async fn release(
        &self,
        ctx: &Hetzner,
        prior: &RRSetObserved,
        _op: Op<'_, NoStep>,
    ) -> Option<Result<(), ApiError>> {
        let ops = ctx.ops();
        let run = async {
            let Some(cur) = read(&ops, &prior.spec).await? else {
                return Ok(());
            };
            let (user, _, own) = split_labels(&cur.labels);
            if !own.is_empty() {
                ops.put(&prior.spec.path(), &LabelsOnly { labels: &user })
                    .await?;
            }
            Ok(())
        };
        Some(run.await)
    }

    fn identity(o: &RRSetObserved) -> Option<String> {
        Some(o.id.clone())
    }

    fn example() -> RRSet {
        let mut r = RRSet::a("docfast.dev", "@", Ipv4Addr::new(203, 0, 113, 9));
        r.ttl = Some(300);
        r.labels.insert("env".into(), "prod".into());
        r.records[0].comment = Some("the load balancer".into());
        r
    }

    fn example_observed() -> Option<RRSetObserved> {
        Some(RRSetObserved {
            spec: Self::example(),
            id: "@/A".into(),
        })
    }
}
