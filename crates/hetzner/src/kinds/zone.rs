//! `hetzner_zone`: a DNS zone in the Cloud API. Name and mode force a replace; TTL changes
//! via `change_ttl`; labels in place.

use async_trait::async_trait;
use cairn_core::{FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::collection::Collection;
use super::{Labels, LabelsOnly, Ops, envelope, split_labels, validate_labels};
use crate::client::ApiError;

/// Whether a zone is served from its records here or transferred from a primary elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneMode {
    /// Records are managed here.
    #[default]
    Primary,
    /// Records are transferred from primary servers.
    Secondary,
}

/// A DNS zone (`/zones`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// The domain (the key), e.g. `docfast.dev`.
    pub name: String,
    /// Primary or secondary.
    pub mode: ZoneMode,
    /// Default TTL.
    pub ttl: u32,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
}

impl Zone {
    /// A primary zone (its records managed here) with TTL 3600.
    pub fn new(name: &str) -> Self {
        Zone {
            name: name.into(),
            mode: ZoneMode::Primary,
            ttl: 3600,
            labels: Labels::new(),
        }
    }

    /// A primary zone with TTL 3600 (the same as [`Zone::new`]).
    pub fn primary(name: &str) -> Self {
        Zone::new(name)
    }

    /// Sets the default TTL.
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl = seconds;
        self
    }

    /// Adds a user label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// An observed zone: the spec plus its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneObserved {
    /// The spec fields as the API reports them.
    #[serde(flatten)]
    pub spec: Zone,
    /// Its id.
    pub id: u64,
}

/// Whether `n` is a lowercase domain name.
pub fn valid_domain(n: &str) -> bool {
    n.contains('.')
        && n.len() <= 253
        && n == n.to_lowercase()
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl Resource for Zone {
    const KIND: &'static str = "hetzner_zone";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["name", "mode"],
            computed: &["id"],
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if !valid_domain(&self.name) {
            e.push(FieldError::new(
                "name",
                format!("{:?} is not a lowercase domain name", self.name),
            ));
        }
        if self.ttl < 60 {
            e.push(FieldError::new("ttl", "must be at least 60"));
        }
        e.extend(validate_labels(&self.labels));
        e
    }
}

cairn_core::attributes! {
    /// Typed attributes of a zone.
    pub trait ZoneAttrs for Zone {
        /// Its id.
        fn id -> u64 = "id";
    }
}

/// A zone as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiZone {
    id: u64,
    name: String,
    mode: ZoneMode,
    ttl: u32,
    #[serde(default)]
    labels: Labels,
}

#[derive(Serialize)]
struct CreateZone<'a> {
    name: &'a str,
    mode: ZoneMode,
    ttl: u32,
    labels: &'a Labels,
}

#[derive(Serialize)]
struct Ttl {
    ttl: u32,
}

/// The `hetzner_zone` kind.
pub(crate) struct Zones;

#[async_trait]
impl Collection for Zones {
    type Spec = Zone;
    type Api = ApiZone;
    type Observed = ZoneObserved;
    const COLLECTION: &'static str = "zones";
    const SINGULAR: &'static str = "zone";

    fn id(api: &ApiZone) -> u64 {
        api.id
    }
    fn name(api: &ApiZone) -> &str {
        &api.name
    }
    fn labels(api: &ApiZone) -> &Labels {
        &api.labels
    }
    fn observed_id(o: &ZoneObserved) -> u64 {
        o.id
    }
    fn spec_labels(spec: &Zone) -> &Labels {
        &spec.labels
    }

    fn observe(api: &ApiZone, _: Option<&Zone>) -> ZoneObserved {
        ZoneObserved {
            spec: Zone {
                name: api.name.clone(),
                mode: api.mode,
                ttl: api.ttl,
                labels: split_labels(&api.labels).0,
            },
            id: api.id,
        }
    }

    async fn create(ops: &Ops<'_>, d: &Zone, labels: &Labels) -> Result<u64, ApiError> {
        let body = CreateZone {
            name: &d.name,
            mode: d.mode,
            ttl: d.ttl,
            labels,
        };
        let v = ops.post("/zones", &body).await?;
        Ok(envelope::<ApiZone>(v, "zone")?.id)
    }

    async fn converge(
        ops: &Ops<'_>,
        cur: &ApiZone,
        d: &Zone,
        labels: &Labels,
    ) -> Result<(), ApiError> {
        if cur.labels != *labels {
            ops.put(&format!("/zones/{}", cur.id), &LabelsOnly { labels })
                .await?;
        }
        if cur.ttl != d.ttl {
            ops.post(
                &format!("/zones/{}/actions/change_ttl", cur.id),
                &Ttl { ttl: d.ttl },
            )
            .await?;
        }
        Ok(())
    }

    fn example() -> Zone {
        let mut z = Zone::primary("docfast.dev");
        z.labels.insert("env".into(), "prod".into());
        z
    }

    fn example_observed() -> ZoneObserved {
        ZoneObserved {
            spec: Self::example(),
            id: 1,
        }
    }
}

crate::collection_kind!(Zones);
