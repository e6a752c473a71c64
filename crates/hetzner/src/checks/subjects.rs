//! What the catalog checks look at: the changes that write something checked (servers,
//! load balancers, rrsets), read through small views of their wire shape, and what the plan
//! itself knows exists (declared zones and keys, observed networks and firewalls).

use std::collections::{BTreeMap, BTreeSet};

use cairn_core::{Address, Field, PlannedChange};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ServerView {
    #[serde(default)]
    server_type: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    ssh_keys: Option<Vec<String>>,
    #[serde(default)]
    networks: Option<Vec<NetView>>,
    #[serde(default)]
    firewalls: Option<Vec<Field<u64>>>,
}

/// A network attachment (server `networks[]`, load balancer `private_net[]`).
#[derive(Debug, Deserialize)]
pub(super) struct NetView {
    network: Field<u64>,
}

/// The wire fields of a load balancer these checks read.
#[derive(Debug, Default, Deserialize)]
pub(super) struct LbView {
    #[serde(default)]
    load_balancer_type: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    private_net: Vec<NetView>,
}

/// A declared network's subnets' zones.
#[derive(Debug, Deserialize)]
pub(super) struct NetworkView {
    #[serde(default)]
    subnets: Vec<SubnetView>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SubnetView {
    network_zone: String,
}

/// The wire fields of an rrset these checks read.
#[derive(Debug, Deserialize)]
pub(super) struct RRSetView {
    zone: Field<String>,
}

/// An observed object's id.
#[derive(Debug, Deserialize)]
pub(super) struct IdView {
    id: u64,
}

pub(super) fn view<T: DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(v).ok()
}

/// What the plan itself knows exists after apply: declared zones and SSH keys (by name),
/// observed networks and firewalls that stay (by id), and the network zones of declared
/// networks' subnets (by the network's address, and by id once it exists).
#[derive(Debug, Default)]
pub(super) struct Known {
    pub(super) zones: BTreeSet<String>,
    pub(super) ssh_keys: BTreeSet<String>,
    pub(super) networks: BTreeSet<u64>,
    pub(super) firewalls: BTreeSet<u64>,
    pub(super) net_zones: BTreeMap<NetKey, (String, BTreeSet<String>)>,
}

/// A network as an attachment names it: a reference to a declared one, or an id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum NetKey {
    Declared(String),
    Id(u64),
}

impl NetKey {
    fn of(f: &Field<u64>) -> NetKey {
        match f {
            Field::Known(id) => NetKey::Id(*id),
            Field::Ref(r) => NetKey::Declared(r.raw().address.0.clone()),
        }
    }
}

impl Known {
    pub(super) fn from_changes(changes: &[PlannedChange<'_>]) -> Known {
        let mut k = Known::default();
        for c in changes.iter().filter(|c| c.after.is_some()) {
            let id = || {
                c.before
                    .and_then(|b| view::<IdView>(&b.value))
                    .map(|i| i.id)
            };
            match c.kind {
                "hetzner_zone" => drop(k.zones.insert(c.key.to_string())),
                "hetzner_ssh_key" => drop(k.ssh_keys.insert(c.key.to_string())),
                "hetzner_network" => {
                    k.networks.extend(id());
                    let zones: BTreeSet<String> = c
                        .after
                        .and_then(view::<NetworkView>)
                        .map(|n| n.subnets.into_iter().map(|s| s.network_zone).collect())
                        .unwrap_or_default();
                    let named = (c.address.0.clone(), zones);
                    k.net_zones
                        .insert(NetKey::Declared(c.address.0.clone()), named.clone());
                    if let Some(id) = id() {
                        k.net_zones.insert(NetKey::Id(id), named);
                    }
                }
                "hetzner_firewall" => k.firewalls.extend(id()),
                _ => {}
            }
        }
        k
    }
}

/// One change the checks look at, with what it writes.
#[derive(Debug)]
pub(super) struct Subject<'a> {
    pub(super) address: &'a Address,
    pub(super) what: What,
}

#[derive(Debug)]
pub(super) enum What {
    Server {
        server_type: String,
        image: String,
        location: String,
        check_location: bool,
        check_type: bool,
        check_image: bool,
        /// SSH key names new to the server.
        ssh_keys: Vec<(usize, String)>,
        /// Literal network ids new to the server.
        networks: Vec<(usize, u64)>,
        /// Literal firewall ids new to the server.
        firewalls: Vec<(usize, u64)>,
        /// Attachments whose network zone must fit the location (all of them when the
        /// location is new, else the new ones).
        attached: Vec<(usize, NetKey)>,
    },
    Lb {
        lb_type: String,
        location: Option<String>,
        check_location: bool,
        check_type: bool,
        networks: Vec<(usize, u64)>,
        attached: Vec<(usize, NetKey)>,
    },
    RRSet {
        zone: String,
    },
}

/// The items of `after` that `before` does not hold, with their index in `after`.
pub(super) fn added<T: PartialEq + Clone>(after: &[T], before: Option<&[T]>) -> Vec<(usize, T)> {
    after
        .iter()
        .enumerate()
        .filter(|(_, x)| before.is_none_or(|b| !b.contains(x)))
        .map(|(i, x)| (i, x.clone()))
        .collect()
}

/// The literal ids of attachments (references are to declared objects).
pub(super) fn literal_ids(nets: &[NetView]) -> Vec<u64> {
    nets.iter()
        .filter_map(|n| n.network.known().copied())
        .collect()
}

pub(super) fn literal(ids: &[Field<u64>]) -> Vec<u64> {
    ids.iter().filter_map(|f| f.known().copied()).collect()
}

impl<'a> Subject<'a> {
    pub(super) fn of(c: &PlannedChange<'a>) -> Option<Subject<'a>> {
        let after = c.after?;
        let before = c.before.map(|b| &b.value);
        let what = match c.kind {
            "hetzner_server" => {
                let a: ServerView = view(after)?;
                let b: Option<ServerView> = before.and_then(view);
                let differs = |f: fn(&ServerView) -> &Option<String>| {
                    b.as_ref().is_none_or(|b| f(b) != f(&a))
                };
                let loc = differs(|v| &v.location);
                let typ = differs(|v| &v.server_type);
                let img = differs(|v| &v.image);
                let keys = a.ssh_keys.clone().unwrap_or_default();
                let prior_keys = b.as_ref().map(|b| b.ssh_keys.clone().unwrap_or_default());
                let nets = literal_ids(a.networks.as_deref().unwrap_or_default());
                let prior_nets = b
                    .as_ref()
                    .map(|b| literal_ids(b.networks.as_deref().unwrap_or_default()));
                let keys_of = |v: &ServerView| -> Vec<NetKey> {
                    v.networks
                        .iter()
                        .flatten()
                        .map(|n| NetKey::of(&n.network))
                        .collect()
                };
                let prior_attached = b.as_ref().filter(|_| !loc).map(keys_of);
                let attached = added(&keys_of(&a), prior_attached.as_deref());
                let fws = literal(a.firewalls.as_deref().unwrap_or_default());
                let prior_fws = b
                    .as_ref()
                    .map(|b| literal(b.firewalls.as_deref().unwrap_or_default()));
                What::Server {
                    server_type: a.server_type.clone()?,
                    image: a.image.clone()?,
                    location: a.location.clone()?,
                    check_location: loc,
                    check_type: loc || typ,
                    check_image: typ || img,
                    ssh_keys: added(&keys, prior_keys.as_deref()),
                    networks: added(&nets, prior_nets.as_deref()),
                    firewalls: added(&fws, prior_fws.as_deref()),
                    attached,
                }
            }
            "hetzner_load_balancer" => {
                let a: LbView = view(after)?;
                let b: Option<LbView> = before.and_then(view);
                let loc = b.as_ref().is_none_or(|b| b.location != a.location);
                let typ = b
                    .as_ref()
                    .is_none_or(|b| b.load_balancer_type != a.load_balancer_type);
                let prior_nets = b.as_ref().map(|b| literal_ids(&b.private_net));
                let keys_of = |v: &LbView| -> Vec<NetKey> {
                    v.private_net
                        .iter()
                        .map(|n| NetKey::of(&n.network))
                        .collect()
                };
                let prior_attached = b.as_ref().filter(|_| !loc).map(keys_of);
                let attached = added(&keys_of(&a), prior_attached.as_deref());
                What::Lb {
                    lb_type: a.load_balancer_type.clone()?,
                    location: a.location.clone(),
                    check_location: loc && a.location.is_some(),
                    check_type: loc || typ,
                    networks: added(&literal_ids(&a.private_net), prior_nets.as_deref()),
                    attached,
                }
            }
            "hetzner_rrset" => {
                let a: RRSetView = view(after)?;
                let zone = a.zone.known()?.clone();
                let b: Option<RRSetView> = before.and_then(view);
                if b.is_some_and(|b| b.zone.known() == Some(&zone)) {
                    return None;
                }
                What::RRSet { zone }
            }
            _ => return None,
        };
        Some(Subject {
            address: c.address,
            what,
        })
    }
}
