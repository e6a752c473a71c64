//! The read-only catalog: locations, datacenters, server types, images, load balancer types.

use axum::http::Method;
use serde_json::{Value, json};
use crate::http::{self, ApiErr};
use crate::routes::Routes;

fn loc(id: u64, name: &str, description: &str, city: &str, country: &str, zone: &str, (lat, lon): (f64, f64)) -> Value {
    json!({"id": id, "name": name, "description": description, "city": city,
           "country": country, "latitude": lat, "longitude": lon, "network_zone": zone})
}

/// All locations, as the real API lists them (ids, names, network zones).
pub fn locations() -> Vec<Value> {
    vec![
        loc(1, "fsn1", "Falkenstein DC Park 1", "Falkenstein", "DE", "eu-central", (50.47612, 12.370071)),
        loc(2, "nbg1", "Nuremberg DC Park 1", "Nuremberg", "DE", "eu-central", (49.452102, 11.076665)),
        loc(3, "hel1", "Helsinki DC Park 1", "Helsinki", "FI", "eu-central", (60.169855, 24.938379)),
        loc(4, "ash", "Ashburn, VA", "Ashburn, VA", "US", "us-east", (39.045821, -77.487073)),
        loc(5, "hil", "Hillsboro, OR", "Hillsboro, OR", "US", "us-west", (45.54222, -122.95128)),
        loc(6, "sin", "Singapore", "Singapore", "SG", "ap-southeast", (1.283333, 103.833333)),
    ]
}

/// A location by name.
pub fn location(name: &str) -> Option<Value> {
    locations().into_iter().find(|l| l["name"] == name)
}

/// A location by id or name, as the API takes it in "ID or name" fields: a JSON number, a
/// numeric string or a name.
pub fn location_ref(v: &Value) -> Option<Value> {
    find(locations(), v, None)
}

/// A datacenter by id or name (JSON number, numeric string or name).
pub fn datacenter_ref(v: &Value) -> Option<Value> {
    find(datacenters(), v, None)
}

/// The datacenter new resources in a location land in.
pub fn datacenter_in(location: &Value) -> Option<Value> {
    datacenters()
        .into_iter()
        .find(|d| d["location"]["name"] == location["name"])
}

/// The locations in Europe (where the cost-optimised and Arm types are offered).
const EU: &[&str] = &["fsn1", "nbg1", "hel1"];
/// Every location.
const ALL: &[&str] = &["fsn1", "nbg1", "hel1", "ash", "hil", "sin"];

/// All datacenters (one per location, with the real names and ids: `fsn1-dc14`, …); a
/// server type is supported and available in a datacenter when it is offered in its
/// location.
pub fn datacenters() -> Vec<Value> {
    const DCS: [(u64, &str, &str, &str); 6] = [
        (4, "fsn1", "fsn1-dc14", "Falkenstein 1 virtual DC 14"),
        (2, "nbg1", "nbg1-dc3", "Nuremberg 1 virtual DC 3"),
        (3, "hel1", "hel1-dc2", "Helsinki 1 virtual DC 2"),
        (5, "ash", "ash-dc1", "Ashburn virtual DC 1"),
        (6, "hil", "hil-dc1", "Hillsboro virtual DC 1"),
        (7, "sin", "sin-dc1", "Singapore virtual DC 1"),
    ];
    let types = server_types();
    DCS.iter()
        .filter_map(|(id, lname, name, desc)| {
            let l = location(lname)?;
            let ids: Vec<u64> = types
                .iter()
                .filter(|t| {
                    t["locations"]
                        .as_array()
                        .is_some_and(|ls| ls.iter().any(|x| x["name"] == *lname))
                })
                .filter_map(|t| t["id"].as_u64())
                .collect();
            Some(json!({"id": id, "name": name, "description": desc, "location": l,
                   "server_types": {"supported": ids, "available": ids, "available_for_migration": ids}}))
        })
        .collect()
}

/// Prices of one product in `locs` (monthly net in euro; hourly = monthly / 672 hours, as
/// Hetzner rounds it).
fn prices(locs: &[&str], monthly: f64) -> Vec<Value> {
    locs.iter()
        .map(|l| {
            let hourly = monthly / 672.0;
            json!({"location": l,
                   "price_hourly": {"net": format!("{hourly:.4}"), "gross": format!("{:.4}", hourly * 1.19)},
                   "price_monthly": {"net": format!("{monthly:.4}"), "gross": format!("{:.4}", monthly * 1.19)},
                   "included_traffic": 21990232555520u64,
                   "price_per_tb_traffic": {"net": "1.0000", "gross": "1.1900"}})
        })
        .collect()
}

/// One server type offered in `locs` (none deprecated).
#[allow(clippy::too_many_arguments)]
fn st(id: u64, name: &str, arch: &str, cpu: &str, category: &str, cores: u64, mem: f64, disk: u64, monthly: f64, locs: &[&str]) -> Value {
    let locations: Vec<Value> = locs
        .iter()
        .filter_map(|n| location(n))
        .map(|l| {
            // `available` and `recommended` are newer than the published spec; the
            // official clients require them.
            json!({"id": l["id"], "name": l["name"], "deprecation": null,
                   "available": true, "recommended": true})
        })
        .collect();
    json!({"id": id, "name": name, "description": name.to_uppercase(), "cores": cores,
           "memory": mem, "disk": disk, "deprecated": false, "deprecation": null,
           "prices": prices(locs, monthly), "storage_type": "local", "cpu_type": cpu,
           "category": category, "architecture": arch, "locations": locations})
}

/// All server types: the shared Intel (CX), shared AMD (CPX), Arm (CAX) and dedicated (CCX)
/// lines, each offered where the real one is. The CX11/CX21 generation is gone (its
/// `unavailable_after` has passed), so it is not listed, as the real API does not list it.
pub fn server_types() -> Vec<Value> {
    vec![
        st(22, "cpx11", "x86", "shared", "regular_purpose", 2, 2.0, 40, 4.35, ALL),
        st(23, "cpx21", "x86", "shared", "regular_purpose", 3, 4.0, 80, 7.55, ALL),
        st(24, "cpx31", "x86", "shared", "regular_purpose", 4, 8.0, 160, 13.60, ALL),
        st(25, "cpx41", "x86", "shared", "regular_purpose", 8, 16.0, 240, 25.20, ALL),
        st(26, "cpx51", "x86", "shared", "regular_purpose", 16, 32.0, 360, 54.90, ALL),
        st(45, "cax11", "arm", "shared", "cost_optimized", 2, 4.0, 40, 3.79, EU),
        st(93, "cax21", "arm", "shared", "cost_optimized", 4, 8.0, 80, 6.49, EU),
        st(94, "cax31", "arm", "shared", "cost_optimized", 8, 16.0, 160, 12.49, EU),
        st(95, "cax41", "arm", "shared", "cost_optimized", 16, 32.0, 320, 24.49, EU),
        st(96, "ccx13", "x86", "dedicated", "general_purpose", 2, 8.0, 80, 12.49, ALL),
        st(97, "ccx23", "x86", "dedicated", "general_purpose", 4, 16.0, 160, 24.49, ALL),
        st(98, "ccx33", "x86", "dedicated", "general_purpose", 8, 32.0, 240, 48.49, ALL),
        st(104, "cx22", "x86", "shared", "cost_optimized", 2, 4.0, 40, 3.79, EU),
        st(105, "cx32", "x86", "shared", "cost_optimized", 4, 8.0, 80, 6.80, EU),
        st(106, "cx42", "x86", "shared", "cost_optimized", 8, 16.0, 160, 16.40, EU),
        st(107, "cx52", "x86", "shared", "cost_optimized", 16, 32.0, 320, 32.40, EU),
    ]
}

fn img(id: u64, name: &str, flavor: &str, version: &str, arch: &str) -> Value {
    json!({"id": id, "type": "system", "status": "available", "name": name,
           "description": format!("{} {version}", flavor_title(flavor)), "image_size": null,
           "disk_size": 5, "created": "2024-04-25T12:00:00+00:00", "created_from": null,
           "bound_to": null, "os_flavor": flavor, "os_version": version, "rapid_deploy": true,
           "protection": {"delete": false}, "deprecated": null, "deleted": null,
           "labels": {}, "architecture": arch})
}

fn flavor_title(flavor: &str) -> String {
    let mut c = flavor.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// All images: the system images, each built for x86 and for Arm (one name, two images).
pub fn images() -> Vec<Value> {
    let mut out = vec![
        img(161547269, "ubuntu-24.04", "ubuntu", "24.04", "x86"),
        img(161547270, "ubuntu-24.04", "ubuntu", "24.04", "arm"),
        img(114690387, "debian-12", "debian", "12", "x86"),
        img(114690389, "debian-12", "debian", "12", "arm"),
    ];
    for (id, name, flavor, version) in [
        (67794396u64, "ubuntu-22.04", "ubuntu", "22.04"),
        (242219457, "debian-13", "debian", "13"),
        (235380001, "fedora-42", "fedora", "42"),
        (76766499, "rocky-9", "rocky", "9"),
        (76766502, "alma-9", "alma", "9"),
    ] {
        out.push(img(id, name, flavor, version, "x86"));
        out.push(img(id + 1_000, name, flavor, version, "arm"));
    }
    out
}

fn lbt(id: u64, name: &str, services: u64, targets: u64, connections: u64, certs: u64, monthly: f64) -> Value {
    json!({"id": id, "name": name, "description": name.to_uppercase(), "max_connections": connections,
           "max_services": services, "max_targets": targets, "max_assigned_certificates": certs,
           "deprecated": null, "prices": prices(ALL, monthly)})
}

/// All load balancer types (priced, hence offered, in every location).
pub fn load_balancer_types() -> Vec<Value> {
    vec![
        lbt(1, "lb11", 5, 25, 10_000, 10, 5.39),
        lbt(2, "lb21", 15, 75, 20_000, 25, 16.40),
        lbt(3, "lb31", 30, 150, 40_000, 50, 32.90),
    ]
}

/// Finds a catalog entry by id or name (images: also by architecture).
pub fn find(items: Vec<Value>, id_or_name: &Value, arch: Option<&str>) -> Option<Value> {
    items.into_iter().find(|i| {
        let hit = match id_or_name {
            Value::Number(n) => i["id"].as_u64() == n.as_u64(),
            Value::String(s) => {
                i["name"].as_str() == Some(s)
                    || i["id"].as_u64().map(|x| x.to_string()) == Some(s.clone())
            }
            _ => false,
        };
        hit && arch.is_none_or(|a| i.get("architecture").is_none_or(|x| x == a))
    })
}

/// The read-only catalog collections (`/locations`, `/server_types`, …): list (with
/// `architecture` on images and server types, `name`, paging) and get by id or name.
pub(crate) fn routes(routes: Routes) -> Routes {
    let mut routes = routes;
    for key in [
        "locations",
        "datacenters",
        "server_types",
        "images",
        "load_balancer_types",
    ] {
        routes = routes
            .route(&format!("/{key}"), Method::GET, move |_, r| {
                let arch = r.q.all("architecture");
                let items = items(key)
                    .into_iter()
                    .filter(|i| {
                        arch.is_empty() || arch.contains(&i["architecture"].as_str().unwrap_or(""))
                    })
                    .collect();
                http::list(key, &format!("/v1/{key}"), items, &r.q, &["type", "status"])
            })
            .route(&format!("/{key}/{{id}}"), Method::GET, move |_, r| {
                let single = key.trim_end_matches('s');
                let it = find(items(key), &Value::String(r.param("id").to_string()), None)
                    .ok_or_else(|| ApiErr::not_found(single))?;
                http::reply(200, serde_json::json!({ single: it }))
            });
    }
    routes
}

/// The items of catalog collection `key`.
fn items(key: &str) -> Vec<Value> {
    match key {
        "locations" => locations(),
        "datacenters" => datacenters(),
        "server_types" => server_types(),
        "images" => images(),
        _ => load_balancer_types(),
    }
}
