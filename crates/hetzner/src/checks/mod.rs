//! Plan-time checks of the Hetzner changes against the live catalog ([`crate::catalog`]):
//! server types, images, locations and load balancer types exist and fit each other (the
//! image is built for the server type's architecture; the type is offered in the location,
//! not past its `unavailable_after` there and in stock in one of its datacenters); a server
//! or load balancer attached to a declared network is in a location of the network zones
//! of its subnets; and every object a change names by name or literal id (an rrset's zone,
//! a server's SSH keys, networks and firewalls, a load balancer's networks) is declared in
//! the stack or exists.
//!
//! Only what a change writes is checked: a server being created, or the fields of an
//! existing one that change. A no-op plan therefore reads no catalog at all, and an object
//! made long ago from a type since withdrawn is not refused for existing. Each failure names
//! the resource, the field and the valid choices; a deprecated entry that can still be used
//! is a passed check carrying a warning.

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_core::{Address, CheckResult, PlannedChange};

use crate::catalog::{Catalog, Needs};
use crate::client::{ApiError, Client};

mod fit;
mod subjects;

use fit::{
    exists_by_id, exists_by_name, fits_zones, image_fits, lb_type_fits, location_exists,
    server_type_fits, zones_fit,
};
use subjects::{Known, Subject, What};

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
pub(super) struct Out {
    results: Vec<CheckResult>,
}

impl Out {
    pub(super) fn fail(&mut self, a: &Address, field: &str, message: String) {
        self.push(a, field, false, message);
    }

    pub(super) fn warn(&mut self, a: &Address, field: &str, message: String) {
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

pub(super) fn join<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = names.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests;
