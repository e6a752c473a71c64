//! `hetzner_primary_ip`: a public address a stack pins (assigned by pointing a server's
//! `public_net.ipv4` at it). Type and location force a replace; name, labels and
//! `auto_delete` update in place.

use async_trait::async_trait;
use cairn_core::{FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::collection::Collection;
use super::{Empty, Labels, NameRef, Ops, envelope, split_labels, validate_labels, validate_name};
use crate::client::ApiError;

/// The address family of a primary IP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpType {
    /// One IPv4 address.
    #[default]
    Ipv4,
    /// An IPv6 /64.
    Ipv6,
}

/// A primary IP (`/primary_ips`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimaryIp {
    /// Name (the key).
    pub name: String,
    /// IPv4 or IPv6.
    #[serde(rename = "type")]
    pub kind: IpType,
    /// Location, e.g. `fsn1`.
    pub location: String,
    /// Delete it together with the server it is assigned to.
    #[serde(default)]
    pub auto_delete: bool,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
}

impl PrimaryIp {
    /// A primary IPv4 in `location`, kept when its server is deleted.
    pub fn ipv4(name: &str, location: &str) -> Self {
        PrimaryIp {
            name: name.into(),
            kind: IpType::Ipv4,
            location: location.into(),
            auto_delete: false,
            labels: Labels::new(),
        }
    }

    /// Adds a user label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// An observed primary IP: the spec plus its id, address and assignee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimaryIpObserved {
    /// The spec fields as the API reports them.
    #[serde(flatten)]
    pub spec: PrimaryIp,
    /// Its id.
    pub id: u64,
    /// The address.
    pub ip: String,
    /// The server it is assigned to.
    pub assignee_id: Option<u64>,
}

impl Resource for PrimaryIp {
    const KIND: &'static str = "hetzner_primary_ip";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["type", "location"],
            computed: &["id", "ip", "assignee_id"],
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        e.extend(validate_labels(&self.labels));
        e
    }
}

cairn_core::attributes! {
    /// Typed attributes of a primary IP.
    pub trait PrimaryIpAttrs for PrimaryIp {
        /// Its id.
        fn id -> u64 = "id";
        /// The address.
        fn ip -> String = "ip";
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ApiDatacenter {
    location: NameRef,
}

/// A primary IP as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiPrimaryIp {
    id: u64,
    name: String,
    #[serde(rename = "type")]
    kind: IpType,
    #[serde(default)]
    location: Option<NameRef>,
    #[serde(default)]
    datacenter: Option<ApiDatacenter>,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    assignee_id: Option<u64>,
}

#[derive(Serialize)]
struct CreatePrimaryIp<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: IpType,
    location: &'a str,
    assignee_type: &'static str,
    auto_delete: bool,
    labels: &'a Labels,
}

#[derive(Serialize)]
struct UpdatePrimaryIp<'a> {
    name: &'a str,
    labels: &'a Labels,
    auto_delete: bool,
}

/// The `hetzner_primary_ip` kind.
pub(crate) struct PrimaryIps;

#[async_trait]
impl Collection for PrimaryIps {
    type Spec = PrimaryIp;
    type Api = ApiPrimaryIp;
    type Observed = PrimaryIpObserved;
    const COLLECTION: &'static str = "primary_ips";
    const SINGULAR: &'static str = "primary_ip";

    fn id(api: &ApiPrimaryIp) -> u64 {
        api.id
    }
    fn name(api: &ApiPrimaryIp) -> &str {
        &api.name
    }
    fn labels(api: &ApiPrimaryIp) -> &Labels {
        &api.labels
    }
    fn observed_id(o: &PrimaryIpObserved) -> u64 {
        o.id
    }
    fn spec_labels(spec: &PrimaryIp) -> &Labels {
        &spec.labels
    }

    fn observe(api: &ApiPrimaryIp, _: Option<&PrimaryIp>) -> PrimaryIpObserved {
        let location = match (&api.location, &api.datacenter) {
            (Some(l), _) => l.name.clone(),
            (None, Some(dc)) => dc.location.name.clone(),
            (None, None) => String::new(),
        };
        PrimaryIpObserved {
            spec: PrimaryIp {
                name: api.name.clone(),
                kind: api.kind,
                location,
                auto_delete: api.auto_delete,
                labels: split_labels(&api.labels).0,
            },
            id: api.id,
            ip: api.ip.clone(),
            assignee_id: api.assignee_id,
        }
    }

    async fn create(ops: &Ops<'_>, d: &PrimaryIp, labels: &Labels) -> Result<u64, ApiError> {
        let body = CreatePrimaryIp {
            name: &d.name,
            kind: d.kind,
            location: &d.location,
            assignee_type: "server",
            auto_delete: d.auto_delete,
            labels,
        };
        let v = ops.post("/primary_ips", &body).await?;
        Ok(envelope::<ApiPrimaryIp>(v, "primary_ip")?.id)
    }

    async fn converge(
        ops: &Ops<'_>,
        cur: &ApiPrimaryIp,
        d: &PrimaryIp,
        labels: &Labels,
    ) -> Result<(), ApiError> {
        if cur.labels != *labels || cur.name != d.name || cur.auto_delete != d.auto_delete {
            let body = UpdatePrimaryIp {
                name: &d.name,
                labels,
                auto_delete: d.auto_delete,
            };
            ops.put(&format!("/primary_ips/{}", cur.id), &body).await?;
        }
        Ok(())
    }

    async fn delete(ops: &Ops<'_>, cur: &ApiPrimaryIp) -> Result<(), ApiError> {
        if cur.assignee_id.is_some() {
            ops.post(
                &format!("/primary_ips/{}/actions/unassign", cur.id),
                &Empty {},
            )
            .await?;
        }
        ops.delete(&format!("/primary_ips/{}", cur.id)).await
    }

    fn example() -> PrimaryIp {
        PrimaryIp {
            name: "api-ip".into(),
            kind: IpType::Ipv4,
            location: "fsn1".into(),
            auto_delete: false,
            labels: [("purpose".to_string(), "api".to_string())].into(),
        }
    }

    fn example_observed() -> PrimaryIpObserved {
        PrimaryIpObserved {
            spec: Self::example(),
            id: 1,
            ip: "203.0.113.1".into(),
            assignee_id: Some(2),
        }
    }
}

crate::collection_kind!(PrimaryIps);
