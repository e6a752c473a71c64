//! Unit tests of the catalog checks over hand-made catalogs (deprecation dates the
//! simulator's current catalog does not have).

use cairn_core::{Address, Observed, PlannedChange};
use serde_json::{Value, json};

use super::*;
use crate::catalog::{
    Datacenter, DatacenterTypes, Deprecation, Image, LbType, Location, Price, ServerType,
    TypeLocation,
};

/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000;

fn st(id: u64, name: &str, arch: &str, locs: &[(&str, Option<&str>)]) -> ServerType {
    ServerType {
        id,
        name: name.into(),
        architecture: arch.into(),
        deprecation: None,
        locations: locs
            .iter()
            .map(|(l, until)| TypeLocation {
                name: (*l).into(),
                deprecation: until.map(|u| Deprecation {
                    announced: Some("2025-01-01T00:00:00Z".into()),
                    unavailable_after: Some(u.into()),
                }),
            })
            .collect(),
    }
}

fn image(id: u64, name: &str, arch: &str) -> Image {
    Image {
        id,
        name: Some(name.into()),
        kind: "system".into(),
        architecture: Some(arch.into()),
        status: "available".into(),
        deprecated: None,
    }
}

fn catalog() -> Catalog {
    Catalog {
        server_types: Some(vec![
            st(104, "cx22", "x86", &[("fsn1", None), ("nbg1", None)]),
            st(45, "cax11", "arm", &[("fsn1", None)]),
            st(1, "cx11", "x86", &[("fsn1", Some("2025-01-01T00:00:00Z"))]),
            st(
                22,
                "cpx11",
                "x86",
                &[("fsn1", Some("2027-01-01T00:00:00Z"))],
            ),
            st(93, "cax21", "arm", &[("fsn1", None)]),
        ]),
        // cax21 is supported in fsn1 but out of stock.
        datacenters: Some(vec![Datacenter {
            name: "fsn1-dc14".into(),
            location: Location {
                name: "fsn1".into(),
                network_zone: "eu-central".into(),
            },
            server_types: DatacenterTypes {
                supported: vec![104, 45, 1, 22, 93],
                available: vec![104, 45, 1, 22],
            },
        }]),
        images: Some(vec![
            image(1, "ubuntu-24.04", "x86"),
            image(2, "ubuntu-24.04", "arm"),
            image(3, "talos-arm", "arm"),
        ]),
        locations: Some(vec![
            Location {
                name: "fsn1".into(),
                network_zone: "eu-central".into(),
            },
            Location {
                name: "nbg1".into(),
                network_zone: "eu-central".into(),
            },
        ]),
        lb_types: Some(vec![LbType {
            name: "lb11".into(),
            deprecated: None,
            prices: vec![Price {
                location: "fsn1".into(),
            }],
        }]),
        ..Catalog::default()
    }
}

/// Runs the checks over one change of `kind` from `before` to `after`.
fn run(kind: &str, before: Option<Value>, after: Value) -> Vec<CheckResult> {
    let address = Address::new(kind, "web1");
    let observed = before.map(|value| Observed {
        key: "web1".into(),
        value,
        marker: None,
        uses: Vec::new(),
        warnings: Vec::new(),
    });
    let changes = [PlannedChange {
        kind,
        key: "web1",
        address: &address,
        before: observed.as_ref(),
        after: Some(&after),
    }];
    let known = Known::from_changes(&changes);
    let subjects: Vec<Subject<'_>> = changes.iter().filter_map(Subject::of).collect();
    evaluate(&subjects, &known, &catalog(), NOW)
}

fn server(server_type: &str, image: &str, location: &str) -> Value {
    json!({"name": "web1", "server_type": server_type, "image": image, "location": location})
}

#[test]
fn a_type_past_its_unavailable_after_is_refused_and_one_still_orderable_warns() {
    let gone = run(
        "hetzner_server",
        None,
        server("cx11", "ubuntu-24.04", "fsn1"),
    );
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(!gone[0].passed);
    assert_eq!(gone[0].name, "hetzner_server.web1.server_type");
    assert!(
        gone[0].message.contains("no longer available in fsn1")
            && gone[0]
                .message
                .ends_with("valid in fsn1: cax11, cpx11, cx22"),
        "{}",
        gone[0].message
    );
    let soon = run(
        "hetzner_server",
        None,
        server("cpx11", "ubuntu-24.04", "fsn1"),
    );
    assert_eq!(soon.len(), 1, "{soon:?}");
    assert!(soon[0].passed, "still orderable: a warning, not a refusal");
    assert!(
        soon[0].message.contains("warning") && soon[0].message.contains("2027-01-01"),
        "{}",
        soon[0].message
    );
}

#[test]
fn a_type_not_offered_in_the_location_names_where_it_is() {
    let r = run(
        "hetzner_server",
        None,
        server("cax11", "ubuntu-24.04", "nbg1"),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0].message,
        "hetzner_server.web1: server_type \"cax11\" is not offered in nbg1 (offered in fsn1); valid in nbg1: cx22"
    );
}

#[test]
fn an_image_for_the_other_architecture_is_refused_with_the_fitting_images() {
    let r = run("hetzner_server", None, server("cx22", "talos-arm", "fsn1"));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].name, "hetzner_server.web1.image");
    assert_eq!(
        r[0].message,
        "hetzner_server.web1: image \"talos-arm\" is built for arm only, but server_type \"cx22\" is x86; valid for cx22 (x86): ubuntu-24.04"
    );
}

#[test]
fn an_unchanged_server_is_not_checked_even_if_its_type_is_gone() {
    let before = server("cx11", "ubuntu-24.04", "fsn1");
    let r = run("hetzner_server", Some(before.clone()), before);
    assert!(r.is_empty(), "{r:?}");
}

#[test]
fn a_type_change_checks_the_type_and_the_images_fit() {
    let before = server("cx22", "ubuntu-24.04", "fsn1");
    let r = run(
        "hetzner_server",
        Some(before),
        server("nope", "ubuntu-24.04", "fsn1"),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].message.contains("server_type \"nope\" does not exist"));
}

#[test]
fn a_load_balancer_type_must_exist_and_be_priced_in_the_location() {
    let lb = |t: &str, l: &str| json!({"name": "web1", "load_balancer_type": t, "location": l});
    let r = run("hetzner_load_balancer", None, lb("lb12", "fsn1"));
    assert_eq!(
        r[0].message,
        "hetzner_load_balancer.web1: load_balancer_type \"lb12\" does not exist; valid in fsn1: lb11"
    );
    let r = run("hetzner_load_balancer", None, lb("lb11", "nbg1"));
    assert!(
        r[0].message
            .contains("not offered in nbg1 (offered in fsn1)"),
        "{r:?}"
    );
    assert!(run("hetzner_load_balancer", None, lb("lb11", "fsn1")).is_empty());
}

#[test]
fn lists_are_needed_only_for_what_changes() {
    let address = Address::new("hetzner_rrset", "x");
    let after = json!({"zone": "docfast.dev", "name": "www", "type": "A", "records": []});
    let changes = [PlannedChange {
        kind: "hetzner_rrset",
        key: "x",
        address: &address,
        before: None,
        after: Some(&after),
    }];
    let subjects: Vec<Subject<'_>> = changes.iter().filter_map(Subject::of).collect();
    let n = needs(&subjects, &Known::from_changes(&changes));
    assert_eq!(
        n,
        Needs {
            zones: true,
            ..Needs::default()
        }
    );
}

#[test]
fn a_type_out_of_stock_in_every_datacenter_of_its_location_is_refused() {
    let r = run(
        "hetzner_server",
        None,
        server("cax21", "ubuntu-24.04", "fsn1"),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0].message,
        "hetzner_server.web1: server_type \"cax21\" is offered in fsn1 but no datacenter there has it available now; valid in fsn1: cax11, cpx11, cx22"
    );
    // nbg1 has no datacenter in this catalog: nothing to tell, no refusal.
    assert!(
        run(
            "hetzner_server",
            None,
            server("cx22", "ubuntu-24.04", "nbg1")
        )
        .is_empty()
    );
}
