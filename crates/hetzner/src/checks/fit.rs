//! The single checks: a location, server type, image or load balancer type against the
//! catalog, a network attachment against its network's zones, a name or id against what is
//! declared or exists. Each pushes failures (and deprecation warnings) naming the field and
//! the valid choices.

use std::collections::BTreeSet;

use cairn_core::Address;

use super::subjects::{Known, NetKey};
use super::{Out, join};
use crate::catalog::{Catalog, Deprecation, Existing, Image, ServerType, unix_time};

/// Whether `location` exists; refuses it naming the valid ones if not.
pub(super) fn location_exists(out: &mut Out, a: &Address, cat: &Catalog, location: &str) -> bool {
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
pub(super) fn server_type_fits<'c>(
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
pub(super) fn image_fits(
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
pub(super) fn lb_type_fits(
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
pub(super) fn fits_zones(attached: &[(usize, NetKey)], known: &Known) -> bool {
    attached
        .iter()
        .any(|(_, k)| known.net_zones.get(k).is_some_and(|(_, z)| !z.is_empty()))
}

/// Refuses an attachment to a declared network none of whose subnets is in the network zone
/// of `location`.
#[allow(clippy::too_many_arguments)]
pub(super) fn zones_fit(
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
pub(super) fn exists_by_name(
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
pub(super) fn exists_by_id(
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
