//! `hetzner_ssh_key`: an SSH public key. Changing the key replaces it; name and labels
//! update in place.

use async_trait::async_trait;
use cairn_core::{FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::collection::Collection;
use super::{Labels, NameLabels, Ops, envelope, split_labels, validate_labels, validate_name};
use crate::client::ApiError;

/// An SSH key (`/ssh_keys`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SshKey {
    /// Name (the key).
    pub name: String,
    /// OpenSSH public key; changing it forces a replace.
    pub public_key: String,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
}

impl SshKey {
    /// An SSH key named `name` holding an OpenSSH public key (`ssh-ed25519 AAAA… user`).
    pub fn new(name: &str, public_key: &str) -> Self {
        SshKey {
            name: name.into(),
            public_key: public_key.into(),
            labels: Labels::new(),
        }
    }

    /// Adds a user label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// An observed SSH key: the spec plus its id and fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SshKeyObserved {
    /// The spec fields as the API reports them.
    #[serde(flatten)]
    pub spec: SshKey,
    /// Its id.
    pub id: u64,
    /// Its fingerprint.
    pub fingerprint: String,
}

impl Resource for SshKey {
    const KIND: &'static str = "hetzner_ssh_key";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["public_key"],
            computed: &["id", "fingerprint"],
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        let k = self.public_key.trim();
        if !(k.starts_with("ssh-") || k.starts_with("ecdsa-")) || k.split_whitespace().count() < 2 {
            e.push(FieldError::new(
                "public_key",
                "is not an OpenSSH public key",
            ));
        }
        e.extend(validate_labels(&self.labels));
        e
    }
}

cairn_core::attributes! {
    /// Typed attributes of an SSH key.
    pub trait SshKeyAttrs for SshKey {
        /// The key's id.
        fn id -> u64 = "id";
    }
}

/// An SSH key as the API returns it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApiSshKey {
    id: u64,
    name: String,
    public_key: String,
    fingerprint: String,
    labels: Labels,
}

#[derive(Serialize)]
struct CreateSshKey<'a> {
    name: &'a str,
    public_key: &'a str,
    labels: &'a Labels,
}

/// The `hetzner_ssh_key` kind.
pub(crate) struct SshKeys;

#[async_trait]
impl Collection for SshKeys {
    type Spec = SshKey;
    type Api = ApiSshKey;
    type Observed = SshKeyObserved;
    const COLLECTION: &'static str = "ssh_keys";
    const SINGULAR: &'static str = "ssh_key";

    fn id(api: &ApiSshKey) -> u64 {
        api.id
    }
    fn name(api: &ApiSshKey) -> &str {
        &api.name
    }
    fn labels(api: &ApiSshKey) -> &Labels {
        &api.labels
    }
    fn observed_id(o: &SshKeyObserved) -> u64 {
        o.id
    }
    fn spec_labels(spec: &SshKey) -> &Labels {
        &spec.labels
    }

    fn observe(api: &ApiSshKey, _: Option<&SshKey>) -> SshKeyObserved {
        SshKeyObserved {
            spec: SshKey {
                name: api.name.clone(),
                public_key: api.public_key.clone(),
                labels: split_labels(&api.labels).0,
            },
            id: api.id,
            fingerprint: api.fingerprint.clone(),
        }
    }

    async fn create(ops: &Ops<'_>, d: &SshKey, labels: &Labels) -> Result<u64, ApiError> {
        let body = CreateSshKey {
            name: &d.name,
            public_key: &d.public_key,
            labels,
        };
        let v = ops.post("/ssh_keys", &body).await?;
        Ok(envelope::<ApiSshKey>(v, "ssh_key")?.id)
    }

    async fn converge(
        ops: &Ops<'_>,
        cur: &ApiSshKey,
        d: &SshKey,
        labels: &Labels,
    ) -> Result<(), ApiError> {
        if cur.labels != *labels || cur.name != d.name {
            let body = NameLabels {
                name: &d.name,
                labels,
            };
            ops.put(&format!("/ssh_keys/{}", cur.id), &body).await?;
        }
        Ok(())
    }

    fn example() -> SshKey {
        SshKey {
            name: "ops".into(),
            public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@host".into(),
            labels: [("team".to_string(), "infra".to_string())].into(),
        }
    }

    fn example_observed() -> SshKeyObserved {
        SshKeyObserved {
            spec: Self::example(),
            id: 1,
            fingerprint: "b7:2f:30:a0:2f:6c:58:6c:21:04:58:61:ba:06:3b:2c".into(),
        }
    }
}

crate::collection_kind!(SshKeys);
