//! `hetzner_volume`: block storage. Created in a location or next to a server; attached to a
//! server by reference (`server: Some(srv.id().into())`, so the graph creates the server
//! first); resized in place (a volume can only grow: a smaller `size` refuses the plan,
//! naming the field); moved between servers by detaching and attaching; detached before it is
//! deleted. `location` and `format` force a replace. `server: None` leaves the attachment
//! unmanaged, like every unset field. `automount` is write-only (sent on create and attach):
//! the observed value echoes the declared one.

use async_trait::async_trait;
use cairn_core::{Field, FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::collection::Collection;
use super::{Empty, Labels, NameLabels, NameRef, Ops, envelope, split_labels, validate_labels};
use crate::client::ApiError;

/// The filesystem a volume is formatted with on creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeFormat {
    /// XFS.
    Xfs,
    /// ext4.
    Ext4,
}

/// A volume (`/volumes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// Name (the key).
    pub name: String,
    /// Size in GB (10-10240); may only grow.
    pub size: u32,
    /// Location, e.g. `fsn1` (required unless `server` is set; then it is the server's).
    #[serde(default)]
    pub location: Option<String>,
    /// The server it is attached to (usually a reference to a server's id).
    #[serde(default)]
    pub server: Option<Field<u64>>,
    /// Format on creation.
    #[serde(default)]
    pub format: Option<VolumeFormat>,
    /// Mount it automatically when attached (write-only).
    #[serde(default)]
    pub automount: Option<bool>,
    /// Refuse deletion in the API.
    #[serde(default)]
    pub delete_protection: Option<bool>,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
}

impl Volume {
    /// A volume of `size` GB in `location`, attached to nothing.
    pub fn new(name: &str, size: u32, location: &str) -> Self {
        Volume {
            name: name.into(),
            size,
            location: Some(location.into()),
            server: None,
            format: None,
            automount: None,
            delete_protection: None,
            labels: Labels::new(),
        }
    }
}

/// An observed volume: the spec plus its id, device path and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeObserved {
    /// The spec fields as the API reports them.
    #[serde(flatten)]
    pub spec: Volume,
    /// Its id.
    pub id: u64,
    /// The device path on the server, e.g. `/dev/disk/by-id/scsi-0HC_Volume_42`.
    pub linux_device: String,
    /// `available` or `creating`.
    pub status: String,
}

impl Resource for Volume {
    const KIND: &'static str = "hetzner_volume";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["location", "format"],
            computed: &["id", "linux_device", "status"],
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && self.name.ends_with(|c: char| c.is_ascii_alphanumeric())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            e.push(FieldError::new(
                "name",
                "must be 1-64 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
            ));
        }
        if !(10..=10240).contains(&self.size) {
            e.push(FieldError::new("size", "must be 10-10240 GB"));
        }
        if self.location.is_none() && self.server.is_none() {
            e.push(FieldError::new(
                "location",
                "is required when the volume is not created attached to a server",
            ));
        }
        if self.automount == Some(true) && self.server.is_none() {
            e.push(FieldError::new("automount", "needs a server to mount on"));
        }
        e.extend(validate_labels(&self.labels));
        e
    }
}

cairn_core::attributes! {
    /// Typed attributes of a volume.
    pub trait VolumeAttrs for Volume {
        /// Its id.
        fn id -> u64 = "id";
        /// The device path on its server.
        fn linux_device -> String = "linux_device";
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
struct Protection {
    delete: bool,
}

/// A volume as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiVolume {
    id: u64,
    name: String,
    size: f64,
    #[serde(default)]
    location: NameRef,
    #[serde(default)]
    server: Option<u64>,
    #[serde(default)]
    format: Option<VolumeFormat>,
    #[serde(default)]
    protection: Protection,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    linux_device: String,
    #[serde(default)]
    status: String,
}

impl ApiVolume {
    fn size_gb(&self) -> u32 {
        self.size.round() as u32
    }
}

#[derive(Serialize)]
struct CreateVolume<'a> {
    name: &'a str,
    size: u32,
    location: Option<&'a str>,
    server: Option<u64>,
    format: Option<VolumeFormat>,
    automount: Option<bool>,
    labels: &'a Labels,
}

#[derive(Serialize)]
struct Attach {
    server: u64,
    automount: Option<bool>,
}

#[derive(Serialize)]
struct Resize {
    size: u32,
}

/// The `hetzner_volume` kind.
pub(crate) struct Volumes;

#[async_trait]
impl Collection for Volumes {
    type Spec = Volume;
    type Api = ApiVolume;
    type Observed = VolumeObserved;
    const COLLECTION: &'static str = "volumes";
    const SINGULAR: &'static str = "volume";

    fn id(api: &ApiVolume) -> u64 {
        api.id
    }
    fn name(api: &ApiVolume) -> &str {
        &api.name
    }
    fn labels(api: &ApiVolume) -> &Labels {
        &api.labels
    }
    fn observed_id(o: &VolumeObserved) -> u64 {
        o.id
    }
    fn spec_labels(spec: &Volume) -> &Labels {
        &spec.labels
    }

    fn observe(api: &ApiVolume, declared: Option<&Volume>) -> VolumeObserved {
        VolumeObserved {
            spec: Volume {
                name: api.name.clone(),
                size: api.size_gb(),
                location: Some(api.location.name.clone()),
                server: api.server.map(Field::from),
                format: api.format,
                automount: declared.and_then(|d| d.automount),
                delete_protection: Some(api.protection.delete),
                labels: split_labels(&api.labels).0,
            },
            id: api.id,
            linux_device: api.linux_device.clone(),
            status: api.status.clone(),
        }
    }

    fn check(before: Option<&VolumeObserved>, after: Option<&Volume>) -> Vec<FieldError> {
        match (before, after) {
            (Some(b), Some(a)) if a.size < b.spec.size => vec![FieldError::new(
                "size",
                format!(
                    "a volume can only grow: {} GB is smaller than the current {} GB",
                    a.size, b.spec.size
                ),
            )],
            _ => Vec::new(),
        }
    }

    async fn create(ops: &Ops<'_>, d: &Volume, labels: &Labels) -> Result<u64, ApiError> {
        let server = d.server.as_ref().and_then(|s| s.known().copied());
        let body = CreateVolume {
            name: &d.name,
            size: d.size,
            // The API takes one of the two: a server implies its location.
            location: if server.is_some() {
                None
            } else {
                d.location.as_deref()
            },
            server,
            format: d.format,
            automount: server.and(d.automount),
            labels,
        };
        let v = ops.post("/volumes", &body).await?;
        Ok(envelope::<ApiVolume>(v, "volume")?.id)
    }

    async fn converge(
        ops: &Ops<'_>,
        cur: &ApiVolume,
        d: &Volume,
        labels: &Labels,
    ) -> Result<(), ApiError> {
        let id = cur.id;
        let act = |a: &str| format!("/volumes/{id}/actions/{a}");
        if cur.labels != *labels || cur.name != d.name {
            let body = NameLabels {
                name: &d.name,
                labels,
            };
            ops.put(&format!("/volumes/{id}"), &body).await?;
        }
        if d.size > cur.size_gb() {
            ops.post(&act("resize"), &Resize { size: d.size }).await?;
        } else if d.size < cur.size_gb() {
            return Err(ApiError::Config(format!(
                "volume {} is {} GB and cannot shrink to {} GB",
                d.name,
                cur.size_gb(),
                d.size
            )));
        }
        if let Some(p) = d.delete_protection
            && p != cur.protection.delete
        {
            ops.post(&act("change_protection"), &Protection { delete: p })
                .await?;
        }
        if let Some(want) = d.server.as_ref().and_then(|s| s.known().copied())
            && cur.server != Some(want)
        {
            if cur.server.is_some() {
                ops.post(&act("detach"), &Empty {}).await?;
            }
            let body = Attach {
                server: want,
                automount: d.automount,
            };
            ops.post(&act("attach"), &body).await?;
        }
        Ok(())
    }

    async fn delete(ops: &Ops<'_>, cur: &ApiVolume) -> Result<(), ApiError> {
        if cur.server.is_some() {
            ops.post(&format!("/volumes/{}/actions/detach", cur.id), &Empty {})
                .await?;
        }
        ops.delete(&format!("/volumes/{}", cur.id)).await
    }

    fn example() -> Volume {
        Volume {
            name: "data".into(),
            size: 50,
            location: Some("fsn1".into()),
            server: Some(7.into()),
            format: Some(VolumeFormat::Ext4),
            automount: Some(true),
            delete_protection: Some(false),
            labels: [("env".to_string(), "prod".to_string())].into(),
        }
    }

    fn example_observed() -> VolumeObserved {
        VolumeObserved {
            spec: Self::example(),
            id: 42,
            linux_device: "/dev/disk/by-id/scsi-0HC_Volume_42".into(),
            status: "available".into(),
        }
    }
}

crate::collection_kind!(Volumes);
