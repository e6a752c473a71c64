//! Plan-time checks of the Hetzner changes against the live catalog ([`crate::catalog`]):
//! server types, images, locations and load balancer types exist and fit each other (the
//! image is built for the server type's architecture, the type is offered in the location
//! and not past its `unavailable_after` there, and in stock in one of its datacenters), and every object a change refers to by
//! name or literal id (an rrset's zone, a server's SSH keys, networks and firewalls, a load
//! balancer's networks) is declared in the stack or exists.
//!
//! Only what a change writes is checked: a server being created, or the fields of an
//! existing one that change. A no-op plan therefore reads no catalog at all, and an object
//! made long ago from a type since withdrawn is not refused for existing. Each failure names
//! the resource, the field and the valid choices; a deprecated entry that can still be used
//! is a passed check carrying a warning. A server or load balancer attached to a declared
//! network must be in a location of one of the network zones its subnets are in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_core::{Address, CheckResult, Field, PlannedChange};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::catalog::{Catalog, Deprecation, Existing, Image, Needs, ServerType, unix_time};
use crate::client::{ApiError, Client};

/// Runs every catalog check over the planned changes of the Hetzner kinds, reading only the
/// lists they need, once.
pub(crate) async fn check_plan(
    client: &Client,
    changes: &[PlannedChange<'_>],
) -> Result<Vec<CheckResult>, ApiError> {
    let known = Known::from_changes(changes);
    let subjects: Vec<Subject<'_>> = changes.iter().filter_map(Subject::of).collect();
    let needs = needs(&subjects, &known);
    if needs == Needs::default() {
        return Ok(Vec::new());
    }
    let catalog = Catalog::read(client, &needs).await?;
    Ok(evaluate(&subjects, &known, &catalog, now()))
}

/// Seconds since the Unix epoch, now.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The wire fields of a server these checks read (its spec as planned or observed).
#[derive(Debug, Default, Deserialize)]
struct ServerView {
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
struct NetView {
    network: Field<u64>,
}

/// The wire fields of a load balancer these checks read.
#[derive(Debug, Default, Deserialize)]
struct LbView {
    #[serde(default)]
    load_balancer_type: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    private_net: Vec<NetView>,
}

/// A declared network's subnets' zones.
#[derive(Debug, Deserialize)]
struct NetworkView {
    #[serde(default)]
    subnets: Vec<SubnetView>,
}

#[derive(Debug, Deserialize)]
struct SubnetView {
    network_zone: String,
}

/// The wire fields of an rrset these checks read.
#[derive(Debug, Deserialize)]
struct RRSetView {
    zone: Field<String>,
}

/// An observed object's id.
#[derive(Debug, Deserialize)]
struct IdView {
    id: u64,
}

fn view<T: DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(v).ok()
}

/// What the plan itself knows exists after apply: declared zones and SSH keys (by name),
/// observed networks and firewalls that stay (by id), and the network zones of declared
/// networks' subnets (by the network's address, and by id once it exists).
#[derive(Debug, Default)]
struct Known {
    zones: BTreeSet<String>,
    ssh_keys: BTreeSet<String>,
    networks: BTreeSet<u64>,
    firewalls: BTreeSet<u64>,
    net_zones: BTreeMap<NetKey, (String, BTreeSet<String>)>,
}

/// A network as an attachment names it: a reference to a declared one, or an id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NetKey {
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
    fn from_changes(changes: &[PlannedChange<'_>]) -> Known {
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
struct Subject<'a> {
    address: &'a Address,
    what: What,
}

#[derive(Debug)]
enum What {
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
fn added<T: PartialEq + Clone>(after: &[T], before: Option<&[T]>) -> Vec<(usize, T)> {
    after
        .iter()
        .enumerate()
        .filter(|(_, x)| before.is_none_or(|b| !b.contains(x)))
        .map(|(i, x)| (i, x.clone()))
        .collect()
}

/// The literal ids of attachments (references are to declared objects).
fn literal_ids(nets: &[NetView]) -> Vec<u64> {
    nets.iter()
        .filter_map(|n| n.network.known().copied())
        .collect()
}

fn literal(ids: &[Field<u64>]) -> Vec<u64> {
    ids.iter().filter_map(|f| f.known().copied()).collect()
}

impl<'a> Subject<'a> {
    fn of(c: &PlannedChange<'a>) -> Option<Subject<'a>> {
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

/// The lists the subjects need read.
fn needs(subjects: &[Subject<'_>], known: &Known) -> Needs {
    let mut n = Needs::default();
    for s in subjects {
        match &s.what {
            What::Server {
                image,
                check_location,
                check_type,
                check_image,
                ssh_keys,
                networks,
                firewalls,
                attached,
                ..
            } => {
                n.locations |= *check_location || fits_zones(attached, known);
                n.server_types |= *check_type || *check_image;
                n.datacenters |= *check_type;
                n.images |= *check_image;
                if *check_image && let Ok(id) = image.parse::<u64>() {
                    n.image_ids.insert(id);
                }
                n.ssh_keys |= ssh_keys.iter().any(|(_, k)| !known.ssh_keys.contains(k));
                n.networks |= networks.iter().any(|(_, id)| !known.networks.contains(id));
                n.firewalls |= firewalls
                    .iter()
                    .any(|(_, id)| !known.firewalls.contains(id));
            }
            What::Lb {
                location,
                check_location,
                check_type,
                networks,
                attached,
                ..
            } => {
                n.locations |=
                    *check_location || (location.is_some() && fits_zones(attached, known));
                n.lb_types |= *check_type;
                n.networks |= networks.iter().any(|(_, id)| !known.networks.contains(id));
            }
            What::RRSet { zone } => n.zones |= !known.zones.contains(zone),
        }
    }
    n
}

/// The checks' results: failures, and passed checks that carry a deprecation warning.
fn evaluate(subjects: &[Subject<'_>], known: &Known, cat: &Catalog, now: i64) -> Vec<CheckResult> {
    let mut out = Out {
        results: Vec::new(),
    };
    for s in subjects {
        let a = s.address;
        match &s.what {
            What::Server {
                server_type,
                image,
                location,
                check_location,
                check_type,
                check_image,
                ssh_keys,
                networks,
                firewalls,
                attached,
            } => {
                let loc_ok = !check_location || location_exists(&mut out, a, cat, location);
                if loc_ok {
                    zones_fit(
                        &mut out, a, cat, known, location, attached, "networks", "network",
                    );
                }
                let st = server_type_fits(
                    &mut out,
                    a,
                    cat,
                    now,
                    (server_type, *check_type),
                    location,
                    loc_ok,
                );
                if *check_image {
                    image_fits(&mut out, a, cat, now, image, st);
                }
                for (i, k) in ssh_keys {
                    if !known.ssh_keys.contains(k) {
                        exists_by_name(
                            &mut out,
                            a,
                            &format!("ssh_keys[{i}]"),
                            k,
                            "SSH key",
                            &known.ssh_keys,
                            cat.ssh_keys.as_deref(),
                        );
                    }
                }
                for (i, id) in networks {
                    if !known.networks.contains(id) {
                        exists_by_id(
                            &mut out,
                            a,
                            &format!("networks[{i}].network"),
                            *id,
                            "network",
                            cat.networks.as_deref(),
                        );
                    }
                }
                for (i, id) in firewalls {
                    if !known.firewalls.contains(id) {
                        exists_by_id(
                            &mut out,
                            a,
                            &format!("firewalls[{i}]"),
                            *id,
                            "firewall",
                            cat.firewalls.as_deref(),
                        );
                    }
                }
            }
            What::Lb {
                lb_type,
                location,
                check_location,
                check_type,
                networks,
                attached,
            } => {
                let loc_ok = !check_location
                    || location
                        .as_ref()
                        .is_none_or(|l| location_exists(&mut out, a, cat, l));
                if let Some(l) = location.as_deref().filter(|_| loc_ok) {
                    zones_fit(
                        &mut out,
                        a,
                        cat,
                        known,
                        l,
                        attached,
                        "private_net",
                        "network",
                    );
                }
                if *check_type {
                    lb_type_fits(
                        &mut out,
                        a,
                        cat,
                        now,
                        lb_type,
                        location.as_deref().filter(|_| loc_ok),
                    );
                }
                for (i, id) in networks {
                    if !known.networks.contains(id) {
                        exists_by_id(
                            &mut out,
                            a,
                            &format!("private_net[{i}].network"),
                            *id,
                            "network",
                            cat.networks.as_deref(),
                        );
                    }
                }
            }
            What::RRSet { zone } => {
                if !known.zones.contains(zone) {
                    exists_by_name(
                        &mut out,
                        a,
                        "zone",
                        zone,
                        "zone",
                        &known.zones,
                        cat.zones.as_deref(),
                    );
                }
            }
        }
    }
    out.results
}

/// Collects check results named `<address>.<field>`, messages `<address>: <field> …`.
struct Out {
    results: Vec<CheckResult>,
}

impl Out {
    fn fail(&mut self, a: &Address, field: &str, message: String) {
        self.push(a, field, false, message);
    }

    fn warn(&mut self, a: &Address, field: &str, message: String) {
        self.push(a, field, true, format!("warning: {message}"));
    }

    fn push(&mut self, a: &Address, field: &str, passed: bool, message: String) {
        self.results.push(CheckResult {
            name: format!("{a}.{field}"),
            passed,
            message: format!("{a}: {message}"),
        });
    }
}

fn join<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = names.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Whether `location` exists; refuses it naming the valid ones if not.
fn location_exists(out: &mut Out, a: &Address, cat: &Catalog, location: &str) -> bool {
    let Some(locs) = &cat.locations else {
        return true;
    };
    if locs.iter().any(|l| l.name == location) {
        return true;
    }
    out.fail(
        a,
        "location",
        format!(
            "location {location:?} does not exist; valid: {}",
            join(locs.iter().map(|l| l.name.as_str()))
        ),
    );
    false
}

/// Whether a deprecation has taken effect (`unavailable_after` passed) at `now`.
fn withdrawn(d: &Deprecation, now: i64) -> bool {
    d.unavailable_after
        .as_deref()
        .and_then(unix_time)
        .is_some_and(|t| t <= now)
}

/// Whether a datacenter in `location` has server type `id` available now (`true` when the
/// datacenters were not read or none is listed for the location: nothing to tell).
fn in_stock(cat: &Catalog, id: u64, location: &str) -> bool {
    let Some(dcs) = cat.datacenters.as_deref() else {
        return true;
    };
    let mut here = dcs
        .iter()
        .filter(|d| d.location.name == location)
        .peekable();
    here.peek().is_none() || here.any(|d| d.server_types.available.contains(&id))
}

/// The server types that can be ordered in `location` now.
fn types_in<'c>(cat: &Catalog, types: &'c [ServerType], location: &str, now: i64) -> Vec<&'c str> {
    types
        .iter()
        .filter(|t| in_stock(cat, t.id, location))
        .filter(|t| {
            t.locations.iter().any(|l| {
                l.name == location
                    && !l
                        .deprecation
                        .as_ref()
                        .or(t.deprecation.as_ref())
                        .is_some_and(|d| withdrawn(d, now))
            })
        })
        .map(|t| t.name.as_str())
        .collect()
}

/// Checks the server type (when `check`) and returns it if it exists.
fn server_type_fits<'c>(
    out: &mut Out,
    a: &Address,
    cat: &'c Catalog,
    now: i64,
    (name, check): (&str, bool),
    location: &str,
    loc_ok: bool,
) -> Option<&'c ServerType> {
    let types = cat.server_types.as_deref()?;
    let found = types.iter().find(|t| t.name == name);
    if !check {
        return found;
    }
    let valid = || {
        if loc_ok {
            format!(
                "valid in {location}: {}",
                join(types_in(cat, types, location, now))
            )
        } else {
            format!("valid: {}", join(types.iter().map(|t| t.name.as_str())))
        }
    };
    let Some(t) = found else {
        out.fail(
            a,
            "server_type",
            format!("server_type {name:?} does not exist; {}", valid()),
        );
        return None;
    };
    if !loc_ok {
        return found;
    }
    let Some(tl) = t.locations.iter().find(|l| l.name == location) else {
        out.fail(
            a,
            "server_type",
            format!(
                "server_type {name:?} is not offered in {location} (offered in {}); {}",
                join(t.locations.iter().map(|l| l.name.as_str())),
                valid()
            ),
        );
        return found;
    };
    if let Some(d) = tl.deprecation.as_ref().or(t.deprecation.as_ref()) {
        let until = d
            .unavailable_after
            .as_deref()
            .unwrap_or("an unannounced date");
        if withdrawn(d, now) {
            out.fail(
                a,
                "server_type",
                format!(
                    "server_type {name:?} is deprecated and no longer available in {location} (unavailable after {until}); {}",
                    valid()
                ),
            );
        } else {
            out.warn(
                a,
                "server_type",
                format!("server_type {name:?} is deprecated in {location}: it can be ordered until {until}"),
            );
        }
    }
    if !in_stock(cat, t.id, location) {
        out.fail(
            a,
            "server_type",
            format!(
                "server_type {name:?} is offered in {location} but no datacenter there has it available now; {}",
                valid()
            ),
        );
    }
    found
}

/// Checks that the image exists, is built for the server type's architecture and is usable.
fn image_fits(
    out: &mut Out,
    a: &Address,
    cat: &Catalog,
    now: i64,
    image: &str,
    st: Option<&ServerType>,
) {
    let Some(images) = cat.images.as_deref() else {
        return;
    };
    let arch = st.map(|t| t.architecture.as_str());
    let usable = |i: &&Image| i.status == "available" && i.name.is_some();
    let names_for = |arch: Option<&str>| {
        join(
            images
                .iter()
                .filter(usable)
                .filter(|i| arch.is_none_or(|x| i.architecture.as_deref().is_none_or(|ia| ia == x)))
                .filter_map(|i| i.name.as_deref()),
        )
    };
    let valid = || match (arch, st) {
        (Some(x), Some(t)) => format!("valid for {} ({x}): {}", t.name, names_for(arch)),
        _ => format!("valid: {}", names_for(None)),
    };
    let matches: Vec<&Image> = images
        .iter()
        .filter(|i| i.name.as_deref() == Some(image) || i.id.to_string() == image)
        .collect();
    if matches.is_empty() {
        out.fail(
            a,
            "image",
            format!("image {image:?} does not exist; {}", valid()),
        );
        return;
    }
    let fitting: Vec<&Image> = matches
        .iter()
        .copied()
        .filter(|i| arch.is_none_or(|x| i.architecture.as_deref().is_none_or(|ia| ia == x)))
        .collect();
    let Some(img) = fitting.first() else {
        let built = join(matches.iter().filter_map(|i| i.architecture.as_deref()));
        let t = st.map_or("", |t| t.name.as_str());
        out.fail(
            a,
            "image",
            format!(
                "image {image:?} is built for {built} only, but server_type {t:?} is {}; {}",
                arch.unwrap_or("?"),
                valid()
            ),
        );
        return;
    };
    if img.status != "available" {
        out.fail(
            a,
            "image",
            format!(
                "image {image:?} is {} and cannot be used yet; {}",
                img.status,
                valid()
            ),
        );
        return;
    }
    if let Some(d) = img
        .deprecated
        .as_deref()
        .filter(|d| unix_time(d).is_some_and(|t| t <= now))
    {
        out.warn(
            a,
            "image",
            format!("image {image:?} is deprecated since {d}: it may be removed; a newer image is advised"),
        );
    }
}

/// Checks that the load balancer type exists and is offered in the location.
fn lb_type_fits(
    out: &mut Out,
    a: &Address,
    cat: &Catalog,
    now: i64,
    name: &str,
    location: Option<&str>,
) {
    let Some(types) = cat.lb_types.as_deref() else {
        return;
    };
    let offered = |t: &crate::catalog::LbType, l: &str| {
        t.prices.is_empty() || t.prices.iter().any(|p| p.location == l)
    };
    let valid = || match location {
        Some(l) => format!(
            "valid in {l}: {}",
            join(
                types
                    .iter()
                    .filter(|t| offered(t, l))
                    .map(|t| t.name.as_str())
            )
        ),
        None => format!("valid: {}", join(types.iter().map(|t| t.name.as_str()))),
    };
    let Some(t) = types.iter().find(|t| t.name == name) else {
        out.fail(
            a,
            "load_balancer_type",
            format!("load_balancer_type {name:?} does not exist; {}", valid()),
        );
        return;
    };
    if let Some(l) = location.filter(|l| !offered(t, l)) {
        out.fail(
            a,
            "load_balancer_type",
            format!(
                "load_balancer_type {name:?} is not offered in {l} (offered in {}); {}",
                join(t.prices.iter().map(|p| p.location.as_str())),
                valid()
            ),
        );
        return;
    }
    if let Some(d) = t
        .deprecated
        .as_deref()
        .filter(|d| unix_time(d).is_some_and(|x| x <= now))
    {
        out.warn(
            a,
            "load_balancer_type",
            format!("load_balancer_type {name:?} is deprecated since {d}"),
        );
    }
}

/// Whether any of the attachments is to a declared network whose zones are known.
fn fits_zones(attached: &[(usize, NetKey)], known: &Known) -> bool {
    attached
        .iter()
        .any(|(_, k)| known.net_zones.get(k).is_some_and(|(_, z)| !z.is_empty()))
}

/// Refuses an attachment to a declared network none of whose subnets is in the network zone
/// of `location`.
#[allow(clippy::too_many_arguments)]
fn zones_fit(
    out: &mut Out,
    a: &Address,
    cat: &Catalog,
    known: &Known,
    location: &str,
    attached: &[(usize, NetKey)],
    list: &str,
    item: &str,
) {
    let Some(locs) = cat.locations.as_deref() else {
        return;
    };
    let Some(zone) = locs
        .iter()
        .find(|l| l.name == location)
        .map(|l| &l.network_zone)
    else {
        return;
    };
    for (i, k) in attached {
        let Some((net, zones)) = known.net_zones.get(k) else {
            continue;
        };
        if zones.is_empty() || zones.contains(zone) {
            continue;
        }
        let fitting = join(
            locs.iter()
                .filter(|l| zones.contains(&l.network_zone))
                .map(|l| l.name.as_str()),
        );
        out.fail(
            a,
            &format!("{list}[{i}].{item}"),
            format!(
                "{list}[{i}].{item} {net} has subnets only in {}, but location {location} is in {zone}; \
                 add a subnet in {zone} or use a location in its zone: {fitting}",
                join(zones.iter().map(String::as_str))
            ),
        );
    }
}

/// Refuses a name that is neither declared nor among the existing objects.
fn exists_by_name(
    out: &mut Out,
    a: &Address,
    field: &str,
    name: &str,
    what: &str,
    declared: &BTreeSet<String>,
    existing: Option<&[Existing]>,
) {
    let Some(existing) = existing else {
        return;
    };
    if existing.iter().any(|e| e.name == name) {
        return;
    }
    out.fail(
        a,
        field,
        format!(
            "{field} {name:?} is neither declared in this stack nor an existing {what}; declared: {}; existing: {}",
            join(declared.iter().map(String::as_str)),
            join(existing.iter().map(|e| e.name.as_str()))
        ),
    );
}

/// Refuses a literal id that no existing object has.
fn exists_by_id(
    out: &mut Out,
    a: &Address,
    field: &str,
    id: u64,
    what: &str,
    existing: Option<&[Existing]>,
) {
    let Some(existing) = existing else {
        return;
    };
    if existing.iter().any(|e| e.id == id) {
        return;
    }
    let ids: Vec<String> = existing
        .iter()
        .map(|e| format!("{} ({})", e.id, e.name))
        .collect();
    out.fail(
        a,
        field,
        format!(
            "{field} {id} is not an existing {what} (declare it and refer to it, or use one of: {})",
            join(ids.iter().map(String::as_str))
        ),
    );
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
