//! The read-only catalog: locations, datacenters, server types, images, load balancer types.

use axum::http::Method;
use serde_json::{Value, json};
use crate::http::{self, ApiErr};
use crate::routes::Routes;

#[allow(clippy::too_many_arguments)]
fn loc(id: u64, name: &str, desc: &str, city: &str, country: &str, lat: f64, lon: f64, zone: &str) -> Value {
    json!({"id": id, "name": name, "description": desc, "city": city,
           "country": country, "latitude": lat, "longitude": lon, "network_zone": zone})
}

/// All locations (the real ones, with their real ids).
pub fn locations() -> Vec<Value> {
    vec![
        loc(1, "fsn1", "Falkenstein DC Park 1", "Falkenstein", "DE", 50.47612, 12.370071, "eu-central"),
        loc(2, "nbg1", "Nuremberg DC Park 1", "Nuremberg", "DE", 49.452102, 11.076665, "eu-central"),
        loc(3, "hel1", "Helsinki DC Park 1", "Helsinki", "FI", 60.169855, 24.938379, "eu-central"),
        loc(4, "ash", "Ashburn, VA", "Ashburn, VA", "US", 39.045821, -77.487073, "us-east"),
        loc(5, "hil", "Hillsboro, OR", "Hillsboro, OR", "US", 45.54222, -122.951924, "us-west"),
        loc(6, "sin", "Singapore", "Singapore", "SG", 1.283333, 103.833333, "ap-southeast"),
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

/// All datacenters (one per location, with the real names and ids: `fsn1-dc14`, …).
pub fn datacenters() -> Vec<Value> {
    const DCS: [(u64, &str, &str, &str); 6] = [
        (4, "fsn1", "fsn1-dc14", "Falkenstein 1 virtual DC 14"),
        (2, "nbg1", "nbg1-dc3", "Nuremberg 1 virtual DC 3"),
        (3, "hel1", "hel1-dc2", "Helsinki 1 virtual DC 2"),
        (5, "ash", "ash-dc1", "Ashburn virtual DC 1"),
        (6, "hil", "hil-dc1", "Hillsboro virtual DC 1"),
        (7, "sin", "sin-dc1", "Singapore virtual DC 1"),
    ];
    let ids: Vec<u64> = server_types().iter().filter_map(|t| t["id"].as_u64()).collect();
    DCS.iter()
        .filter_map(|(id, l, name, desc)| {
            let l = location(l)?;
            Some(json!({"id": id, "name": name, "description": desc, "location": l,
                   "server_types": {"supported": ids, "available": ids, "available_for_migration": ids}}))
        })
        .collect()
}

fn st(id: u64, name: &str, arch: &str, cores: u64, mem: f64, disk: u64) -> Value {
    let locs: Vec<Value> = locations()
        .iter()
        .map(|l| json!({"id": l["id"], "name": l["name"], "deprecation": null, "available": true, "recommended": true}))
        .collect();
    json!({"id": id, "name": name, "description": name.to_uppercase(), "cores": cores,
           "memory": mem, "disk": disk, "deprecated": false, "deprecation": null,
           "prices": [{"location": "fsn1", "price_hourly": {"net": "0.0060", "gross": "0.0071"},
                       "price_monthly": {"net": "3.7900", "gross": "4.5101"},
                       "included_traffic": 21990232555520u64,
                       "price_per_tb_traffic": {"net": "1.0000", "gross": "1.1900"}}],
           "storage_type": "local", "cpu_type": "shared", "category": "cost_optimized",
           "architecture": arch, "locations": locs, "included_traffic": 21990232555520u64})
}

/// All server types.
pub fn server_types() -> Vec<Value> {
    vec![
        st(1, "cx22", "x86", 2, 4.0, 40),
        st(2, "cx32", "x86", 4, 8.0, 80),
        st(3, "cpx11", "x86", 2, 2.0, 40),
        st(45, "cax11", "arm", 2, 4.0, 40),
        st(93, "cax21", "arm", 4, 8.0, 80),
    ]
}

fn img(id: u64, name: &str, flavor: &str, version: &str, arch: &str) -> Value {
    json!({"id": id, "type": "system", "status": "available", "name": name,
           "description": format!("{flavor} {version}"), "image_size": null, "disk_size": 5,
           "created": "2024-04-25T12:00:00+00:00", "created_from": null, "bound_to": null,
           "os_flavor": flavor, "os_version": version, "rapid_deploy": true,
           "protection": {"delete": false}, "deprecated": null, "deleted": null,
           "labels": {}, "architecture": arch})
}

/// All images.
pub fn images() -> Vec<Value> {
    vec![
        img(161547269, "ubuntu-24.04", "ubuntu", "24.04", "x86"),
        img(161547270, "ubuntu-24.04", "ubuntu", "24.04", "arm"),
        img(114690387, "debian-12", "debian", "12", "x86"),
        img(114690389, "debian-12", "debian", "12", "arm"),
    ]
}

fn lbt(id: u64, name: &str, services: u64, targets: u64) -> Value {
    json!({"id": id, "name": name, "description": name.to_uppercase(), "max_connections": 10000,
           "max_services": services, "max_targets": targets, "max_assigned_certificates": 10,
           "deprecated": null,
           "prices": [{"location": "fsn1", "price_hourly": {"net": "0.0080", "gross": "0.0095"},
                       "price_monthly": {"net": "5.3900", "gross": "6.4141"},
                       "included_traffic": 21990232555520u64,
                       "price_per_tb_traffic": {"net": "1.0000", "gross": "1.1900"}}]})
}

/// All load balancer types.
pub fn load_balancer_types() -> Vec<Value> {
    vec![
        lbt(1, "lb11", 5, 25),
        lbt(2, "lb21", 15, 75),
        lbt(3, "lb31", 30, 150),
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
