//! `hetzner_server`: a cloud server. Name and labels update in place; type changes via
//! `change_type` (stop, change, start); network attachments and firewalls via actions;
//! image, location, user_data, ssh_keys and placement group force a replace.
//!
//! `user_data` and `ssh_keys` are write-only in the API: cairn stores keyed digests of them
//! (HMAC-SHA256 under the machine's or team's digest key, [`cairn_core::digest_key`]) in the
//! labels `cairn.dev/user-data` and `cairn.dev/ssh-keys` and compares those. An object that
//! carries no digest (made by hand, being adopted) is trusted to match; one whose digest was
//! made with another key, or is an unkeyed digest from an older cairn, cannot be compared:
//! no change is planned for it and the plan warns, naming the server and the fix.

use async_trait::async_trait;
use cairn_core::digest_key::LabelCheck;
use cairn_core::{Address, Field, FieldError, Handle, KeyRef, KeyedList, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::collection::Collection;
use super::firewall::Firewall;
use super::network::{Network, NetworkAttachment};
use super::primary_ip::PrimaryIp;
use super::ssh_key::SshKey;
use super::{
    ApiPrivateNet, Empty, IdRef, Labels, NameLabels, NameRef, NetworkAction, Ops, envelope,
    split_labels, validate_labels, validate_name,
};
use crate::client::ApiError;
use crate::provider::Hetzner;

/// Label with the digest of the last written `user_data`.
pub const USER_DATA_LABEL: &str = "cairn.dev/user-data";
/// Label with the digest of the last written `ssh_keys`.
pub const SSH_KEYS_LABEL: &str = "cairn.dev/ssh-keys";

/// An attachment of a server to a private network (the same type as a load balancer's).
pub type ServerNetwork = NetworkAttachment;

/// Public networking of a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerPublicNet {
    /// A pinned primary IPv4 (id of a `PrimaryIp`).
    pub ipv4: Option<Field<u64>>,
}

/// An observed server: the spec plus its id, addresses and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerObserved {
    /// The spec fields as the API reports them (write-only fields as compared with the
    /// declared values).
    #[serde(flatten)]
    pub spec: Server,
    /// Its id.
    pub id: u64,
    /// Its public IPv4 address.
    pub ipv4: Option<String>,
    /// Its public IPv6 network.
    pub ipv6: Option<String>,
    /// `running`, `off`, …
    pub status: String,
}

/// A server (`/servers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// Name (the key).
    pub name: String,
    /// Server type, e.g. `cax11`.
    pub server_type: String,
    /// Image name, e.g. `ubuntu-24.04`.
    pub image: String,
    /// Location, e.g. `fsn1`.
    pub location: String,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
    /// Cloud-init user data (sensitive, write-only).
    #[serde(default)]
    pub user_data: Option<String>,
    /// SSH keys by name (write-only): a handle of a declared `SshKey` (`&key`) or the name
    /// of one that exists already.
    #[serde(default)]
    pub ssh_keys: Option<Vec<KeyRef<SshKey>>>,
    /// Private network attachments (keyed by network).
    #[serde(default)]
    pub networks: Option<Vec<ServerNetwork>>,
    /// Firewall ids applied directly to this server (use this or `Firewall::apply_to`).
    #[serde(default)]
    pub firewalls: Option<Vec<Field<u64>>>,
    /// Placement group id.
    #[serde(default)]
    pub placement_group: Option<Field<u64>>,
    /// Public networking (a pinned primary IP).
    #[serde(default)]
    pub public_net: Option<ServerPublicNet>,
}

impl Server {
    /// A server with the essentials (name, type such as `cax11`, image such as
    /// `ubuntu-24.04`, location such as `fsn1`); everything else unmanaged until a builder
    /// method below sets it.
    pub fn new(name: &str, server_type: &str, image: &str, location: &str) -> Self {
        Server {
            name: name.into(),
            server_type: server_type.into(),
            image: image.into(),
            location: location.into(),
            labels: Labels::new(),
            user_data: None,
            ssh_keys: None,
            networks: None,
            firewalls: None,
            placement_group: None,
            public_net: None,
        }
    }

    /// Adds a user label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Attaches the server to a declared network with a fixed private IP.
    pub fn network(mut self, network: &Handle<Network>, ip: impl Into<std::net::Ipv4Addr>) -> Self {
        self.networks
            .get_or_insert_with(Vec::new)
            .push(NetworkAttachment::new(network, Some(ip.into())));
        self
    }

    /// Attaches the server to a declared network; the API chooses its private IP.
    pub fn network_any_ip(mut self, network: &Handle<Network>) -> Self {
        self.networks
            .get_or_insert_with(Vec::new)
            .push(NetworkAttachment::new(network, None));
        self
    }

    /// Sets the cloud-init user data (sensitive, write-only; changing it replaces the server).
    pub fn user_data(mut self, user_data: impl Into<String>) -> Self {
        self.user_data = Some(user_data.into());
        self
    }

    /// Adds an SSH key: a declared key's handle (`&key`, ordered before the server) or the
    /// name of a key that exists already.
    pub fn ssh_key(mut self, key: impl Into<KeyRef<SshKey>>) -> Self {
        self.ssh_keys.get_or_insert_with(Vec::new).push(key.into());
        self
    }

    /// Applies a declared firewall directly to this server (or use `Firewall::apply_to`).
    pub fn firewall(mut self, firewall: &Handle<Firewall>) -> Self {
        use super::firewall::FirewallAttrs;
        self.firewalls
            .get_or_insert_with(Vec::new)
            .push(firewall.id().into());
        self
    }

    /// Pins a declared primary IPv4 as the server's public address.
    pub fn primary_ipv4(mut self, ip: &Handle<PrimaryIp>) -> Self {
        use super::primary_ip::PrimaryIpAttrs;
        self.public_net = Some(ServerPublicNet {
            ipv4: Some(ip.id().into()),
        });
        self
    }
}

impl Resource for Server {
    const KIND: &'static str = "hetzner_server";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &[
                "image",
                "location",
                "user_data",
                "ssh_keys",
                "placement_group",
                "public_net",
            ],
            computed: &["id", "ipv4", "ipv6", "status"],
            sensitive: &["user_data"],
            keyed: &[KeyedList {
                path: "networks",
                key: &["network"],
            }],
            unordered: &["ssh_keys", "firewalls"],
            restart: &["server_type"],
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            e.push(FieldError::new("name", "must be a valid hostname"));
        }
        e.extend(validate_labels(&self.labels));
        for (f, v) in [
            ("server_type", &self.server_type),
            ("image", &self.image),
            ("location", &self.location),
        ] {
            if v.is_empty() {
                e.push(FieldError::new(f, "is required"));
            }
        }
        if self.user_data.as_ref().is_some_and(|u| u.len() > 32 * 1024) {
            e.push(FieldError::new("user_data", "must be at most 32 KiB"));
        }
        e
    }

    fn key_refs(&self) -> Vec<(String, Address)> {
        let keys = self.ssh_keys.iter().flatten().enumerate();
        keys.filter_map(|(i, k)| Some((format!("ssh_keys[{i}]"), k.address()?.clone())))
            .collect()
    }
}

cairn_core::attributes! {
    /// Typed attributes of a server.
    pub trait ServerAttrs for Server {
        /// The server's id.
        fn id -> u64 = "id";
        /// Its public IPv4 address.
        fn ipv4 -> std::net::Ipv4Addr = "ipv4";
        /// Its IP in the first private network it is attached to.
        fn private_ipv4 -> std::net::Ipv4Addr = "networks[0].ip";
    }
}

/// The write-only fields as their labels digest them: user-data as a string, SSH keys sorted.
fn write_only_values(d: &Server) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if let Some(u) = &d.user_data {
        out.push((USER_DATA_LABEL, json!(u)));
    }
    if let Some(keys) = &d.ssh_keys {
        let mut k: Vec<&str> = keys.iter().map(KeyRef::key).collect();
        k.sort_unstable();
        out.push((SSH_KEYS_LABEL, json!(k)));
    }
    out
}

/// The write-only fields' keyed digests, as labels (the key is loaded only when there is a
/// write-only value to digest).
fn write_only(ctx: &Hetzner, d: &Server) -> Result<Vec<(&'static str, String)>, ApiError> {
    let values = write_only_values(d);
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let key = ctx.digest_key()?;
    Ok(values
        .into_iter()
        .map(|(l, v)| (l, key.label(&v)))
        .collect())
}

/// The labels to write, except that a digest label cairn cannot read (another machine's
/// key, or a plain digest from an older cairn) is kept as it is: an update does not write
/// the write-only fields, so it must not claim they hold the declared values.
fn keep_unreadable_digests(cur: &Labels, labels: &Labels) -> Labels {
    let mut out = labels.clone();
    for label in [USER_DATA_LABEL, SSH_KEYS_LABEL] {
        let (Some(have), Some(want)) = (cur.get(label), labels.get(label)) else {
            continue;
        };
        // `h1-<key id>-`: the same key wrote `have` only if it starts the same way.
        let ours = want.splitn(3, '-').take(2).collect::<Vec<_>>().join("-") + "-";
        if !have.starts_with(&ours) {
            out.insert(label.to_string(), have.clone());
        }
    }
    out
}

/// What the digest label of one write-only field says about the declared value: the value
/// to report as observed, and a warning when cairn cannot tell.
fn read_digest(
    ctx: &Hetzner,
    server: &str,
    field: &str,
    label: Option<&String>,
    declared: &Value,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let Some(have) = label else {
        // No digest (adopted, or made by hand): trusted to match.
        return Ok((None, None));
    };
    let key = ctx.digest_key()?;
    let cannot_tell = |why: String, fix: String| {
        format!(
            "{why}, so cairn cannot tell whether {field} changed and plans no replacement for it; fix: {fix}"
        )
    };
    let label_name = if field == "user_data" {
        USER_DATA_LABEL
    } else {
        SSH_KEYS_LABEL
    };
    Ok(match key.check(have, declared) {
        LabelCheck::Same => (None, None),
        LabelCheck::Differs => (Some(have.clone()), None),
        LabelCheck::OtherKey { key_id } => (
            None,
            Some(cannot_tell(
                format!(
                    "the digest of {field} was made with digest key {key_id}, not this machine's ({})",
                    key.id()
                ),
                format!(
                    "share one key: set CAIRN_DIGEST_KEY to the same secret on every machine and CI runner that applies this stack (key {key_id} is the one in use on server {server})"
                ),
            )),
        ),
        LabelCheck::Unkeyed => (
            None,
            Some(cannot_tell(
                format!(
                    "the digest of {field} is an unkeyed digest from an older cairn (guessable offline), not one made with a digest key"
                ),
                format!(
                    "once you know server {server} holds the declared {field}, remove its label {label_name} (cairn writes a keyed one at its next change of the server), or replace the server deliberately"
                ),
            )),
        ),
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ApiAddress {
    id: Option<u64>,
    ip: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ApiServerPublicNet {
    ipv4: Option<ApiAddress>,
    ipv6: Option<ApiAddress>,
    firewalls: Vec<IdRef>,
}

/// A server as the API returns it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApiServer {
    id: u64,
    name: String,
    status: String,
    labels: Labels,
    server_type: NameRef,
    image: Option<NameRef>,
    location: NameRef,
    private_net: Vec<ApiPrivateNet>,
    public_net: ApiServerPublicNet,
    placement_group: Option<IdRef>,
}

#[derive(Serialize)]
struct CreatePublicNet {
    enable_ipv4: bool,
    enable_ipv6: bool,
    ipv4: u64,
}

#[derive(Serialize)]
struct CreateServer<'a> {
    name: &'a str,
    server_type: &'a str,
    image: &'a str,
    location: &'a str,
    labels: &'a Labels,
    user_data: Option<&'a str>,
    ssh_keys: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    networks: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    firewalls: Vec<IdRef>,
    placement_group: Option<u64>,
    public_net: Option<CreatePublicNet>,
}

#[derive(Serialize)]
struct ChangeType<'a> {
    server_type: &'a str,
    upgrade_disk: bool,
}

#[derive(Serialize)]
struct FirewallResource {
    #[serde(rename = "type")]
    kind: &'static str,
    server: IdRef,
}

#[derive(Serialize)]
struct ApplyFirewall<'a> {
    apply_to: &'a [FirewallResource],
}

#[derive(Serialize)]
struct RemoveFirewall<'a> {
    remove_from: &'a [FirewallResource],
}

fn known(f: &Field<u64>) -> Option<u64> {
    f.known().copied()
}

/// The `hetzner_server` kind.
pub(crate) struct Servers;

#[async_trait]
impl Collection for Servers {
    type Spec = Server;
    type Api = ApiServer;
    type Observed = ServerObserved;
    const COLLECTION: &'static str = "servers";
    const SINGULAR: &'static str = "server";

    fn id(api: &ApiServer) -> u64 {
        api.id
    }
    fn name(api: &ApiServer) -> &str {
        &api.name
    }
    fn labels(api: &ApiServer) -> &Labels {
        &api.labels
    }
    fn observed_id(o: &ServerObserved) -> u64 {
        o.id
    }
    fn spec_labels(spec: &Server) -> &Labels {
        &spec.labels
    }
    fn extra_labels(ctx: &Hetzner, spec: &Server) -> Result<Vec<(&'static str, String)>, ApiError> {
        write_only(ctx, spec)
    }

    /// Compares the write-only fields' digest labels with the declared values under the
    /// digest key: same → as declared; our key, other MAC → the written value (a change);
    /// another key or an unkeyed digest → as declared (no change) plus a warning.
    fn observe_in(
        ctx: &Hetzner,
        api: &ApiServer,
        declared: Option<&Server>,
    ) -> Result<(ServerObserved, Vec<String>), ApiError> {
        let mut o = Self::observe(api, declared);
        let mut warnings = Vec::new();
        let Some(d) = declared else {
            return Ok((o, warnings));
        };
        let (_, _, own) = split_labels(&api.labels);
        for (label, value) in write_only_values(d) {
            let field = if label == USER_DATA_LABEL {
                "user_data"
            } else {
                "ssh_keys"
            };
            let (differs, warning) = read_digest(ctx, &api.name, field, own.get(label), &value)?;
            warnings.extend(warning);
            if let Some(have) = differs {
                if label == USER_DATA_LABEL {
                    o.spec.user_data = Some(format!("(written value, digest {have})"));
                } else {
                    o.spec.ssh_keys = Some(vec![format!("(written keys, digest {have})").into()]);
                }
            }
        }
        Ok((o, warnings))
    }

    /// The server as the API shows it, with the declared write-only values (which the API
    /// never returns); [`Collection::observe_in`] then checks them against their digests.
    fn observe(api: &ApiServer, declared: Option<&Server>) -> ServerObserved {
        let (labels, _, _) = split_labels(&api.labels);
        let user_data = declared.and_then(|d| d.user_data.clone());
        let ssh_keys = declared.and_then(|d| d.ssh_keys.clone());
        let pn = &api.public_net;
        ServerObserved {
            spec: Server {
                name: api.name.clone(),
                server_type: api.server_type.name.clone(),
                image: api
                    .image
                    .as_ref()
                    .map(|i| i.name.clone())
                    .unwrap_or_default(),
                location: api.location.name.clone(),
                labels,
                user_data,
                ssh_keys,
                networks: Some(
                    api.private_net
                        .iter()
                        .map(|p| ServerNetwork {
                            network: p.network.into(),
                            ip: p.ip,
                        })
                        .collect(),
                ),
                firewalls: Some(pn.firewalls.iter().map(|f| f.id.into()).collect()),
                placement_group: api.placement_group.map(|p| p.id.into()),
                public_net: Some(ServerPublicNet {
                    ipv4: pn.ipv4.as_ref().and_then(|a| a.id).map(Field::from),
                }),
            },
            id: api.id,
            ipv4: pn.ipv4.as_ref().and_then(|a| a.ip.clone()),
            ipv6: pn.ipv6.as_ref().and_then(|a| a.ip.clone()),
            status: api.status.clone(),
        }
    }

    async fn create(ops: &Ops<'_>, d: &Server, labels: &Labels) -> Result<u64, ApiError> {
        // Networks without a fixed IP go in the create call; fixed IPs are attached afterwards.
        let networks = d
            .networks
            .iter()
            .flatten()
            .filter(|n| n.ip.is_none())
            .filter_map(|n| known(&n.network))
            .collect();
        let firewalls = d
            .firewalls
            .iter()
            .flatten()
            .filter_map(known)
            .map(|id| IdRef { id })
            .collect();
        let body = CreateServer {
            name: &d.name,
            server_type: &d.server_type,
            image: &d.image,
            location: &d.location,
            labels,
            user_data: d.user_data.as_deref(),
            ssh_keys: d
                .ssh_keys
                .as_ref()
                .map(|k| k.iter().map(KeyRef::key).collect()),
            networks,
            firewalls,
            placement_group: d.placement_group.as_ref().and_then(known),
            public_net: d
                .public_net
                .as_ref()
                .and_then(|p| p.ipv4.as_ref())
                .and_then(known)
                .map(|ipv4| CreatePublicNet {
                    enable_ipv4: true,
                    enable_ipv6: true,
                    ipv4,
                }),
        };
        let v = ops.post("/servers", &body).await?;
        Ok(envelope::<ApiServer>(v, "server")?.id)
    }

    async fn converge(
        ops: &Ops<'_>,
        cur: &ApiServer,
        d: &Server,
        labels: &Labels,
    ) -> Result<(), ApiError> {
        let id = cur.id;
        let act = |a: &str| format!("/servers/{id}/actions/{a}");
        let labels = &keep_unreadable_digests(&cur.labels, labels);
        if cur.labels != *labels || cur.name != d.name {
            let body = NameLabels {
                name: &d.name,
                labels,
            };
            ops.put(&format!("/servers/{id}"), &body).await?;
        }
        if cur.server_type.name != d.server_type {
            let was_running = cur.status != "off";
            if was_running {
                ops.post(&act("shutdown"), &Empty {}).await?;
            }
            let body = ChangeType {
                server_type: &d.server_type,
                upgrade_disk: false,
            };
            ops.post(&act("change_type"), &body).await?;
            if was_running {
                ops.post(&act("poweron"), &Empty {}).await?;
            }
        }
        if let Some(want) = &d.networks {
            let have = &cur.private_net;
            let find = |n: u64| want.iter().find(|w| known(&w.network) == Some(n));
            for h in have {
                let w = find(h.network);
                let wrong_ip = w.is_some_and(|w| w.ip.is_some() && w.ip != h.ip);
                if w.is_none() || wrong_ip {
                    let body = NetworkAction {
                        network: h.network,
                        ip: None,
                    };
                    ops.post(&act("detach_from_network"), &body).await?;
                }
            }
            for w in want {
                let Some(n) = known(&w.network) else { continue };
                let h = have.iter().find(|h| h.network == n);
                let wrong_ip = h.is_some_and(|h| w.ip.is_some() && w.ip != h.ip);
                if h.is_none() || wrong_ip {
                    let body = NetworkAction {
                        network: n,
                        ip: w.ip,
                    };
                    ops.post(&act("attach_to_network"), &body).await?;
                }
            }
        }
        if let Some(want) = &d.firewalls {
            let want: Vec<u64> = want.iter().filter_map(known).collect();
            let have: Vec<u64> = cur.public_net.firewalls.iter().map(|f| f.id).collect();
            let res = [FirewallResource {
                kind: "server",
                server: IdRef { id },
            }];
            for h in &have {
                if !want.contains(h) {
                    ops.post(
                        &format!("/firewalls/{h}/actions/remove_from_resources"),
                        &RemoveFirewall { remove_from: &res },
                    )
                    .await?;
                }
            }
            for w in &want {
                if !have.contains(w) {
                    ops.post(
                        &format!("/firewalls/{w}/actions/apply_to_resources"),
                        &ApplyFirewall { apply_to: &res },
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    fn example() -> Server {
        let mut s = Server::new("web-1", "cax11", "ubuntu-24.04", "fsn1");
        s.labels.insert("tier".into(), "web".into());
        s.user_data = Some("#cloud-config\n".into());
        s.ssh_keys = Some(vec!["ops".into()]);
        s.networks = Some(vec![ServerNetwork {
            network: 1.into(),
            ip: Some(std::net::Ipv4Addr::new(10, 0, 1, 20)),
        }]);
        s.firewalls = Some(vec![2.into()]);
        s.placement_group = Some(3.into());
        s.public_net = Some(ServerPublicNet {
            ipv4: Some(4.into()),
        });
        s
    }

    fn example_observed() -> ServerObserved {
        ServerObserved {
            spec: Self::example(),
            id: 5,
            ipv4: Some("203.0.113.5".into()),
            ipv6: Some("2001:db8::/64".into()),
            status: "running".into(),
        }
    }
}

crate::collection_kind!(Servers);
