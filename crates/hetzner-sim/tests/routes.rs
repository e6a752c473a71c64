//! The API router: real routes with path parameters and method routing, and the answers the
//! real API gives for what it does not route — every request still counted by the kit.

use cairn_hetzner_sim::{HetznerSim, SimConfig, SimHandle};
use serde_json::{Value, json};

async fn call(
    sim: &SimHandle,
    method: reqwest::Method,
    path: &str,
    auth: bool,
    body: Option<Value>,
) -> (u16, Value, bool) {
    let mut rq = reqwest::Client::new().request(method, format!("{}{path}", sim.endpoint));
    if auth {
        rq = rq.bearer_auth(&sim.token);
    }
    if let Some(b) = body {
        rq = rq.json(&b);
    }
    let r = rq.send().await.unwrap();
    let limited = r.headers().contains_key("ratelimit-remaining");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        limited,
    )
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_not_found_with_the_api_envelope_and_are_counted() {
    let sim = HetznerSim::start(SimConfig::default()).await.unwrap();
    let get = reqwest::Method::GET;

    let (s, v, limited) = call(&sim, get.clone(), "/no_such_things", true, None).await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_found")), "{v}");
    assert!(limited, "rate-limit headers on an unrouted answer too");

    // A routed path with a method it does not serve: 404 as well, not axum's bare 405.
    let (s, v, _) = call(&sim, reqwest::Method::PATCH, "/servers", true, None).await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_found")), "{v}");

    // Auth comes before routing.
    let (s, v, _) = call(&sim, get.clone(), "/no_such_things", false, None).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (401, &json!("unauthorized")),
        "{v}"
    );

    let c = sim.counters();
    assert_eq!(c.total, 3, "{c:?}");
    assert_eq!(c.requests.get("PATCH /v1/servers"), Some(&1), "{c:?}");
}

#[tokio::test]
async fn path_parameters_reach_the_handlers() {
    let sim = HetznerSim::start(SimConfig::default()).await.unwrap();
    let body = json!({"name": "web", "server_type": "cx22", "image": "debian-12"});
    let (s, v, _) = call(&sim, reqwest::Method::POST, "/servers", true, Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let id = v["server"]["id"].as_u64().unwrap();

    let (s, v, _) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/servers/{id}"),
        true,
        None,
    )
    .await;
    assert_eq!((s, &v["server"]["name"]), (200, &json!("web")), "{v}");
    let (s, v, _) = call(&sim, reqwest::Method::GET, "/servers/999", true, None).await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_found")), "{v}");

    // A catalog item by name, and an rrset of a zone named in the path.
    let (s, v, _) = call(&sim, reqwest::Method::GET, "/locations/fsn1", true, None).await;
    assert_eq!((s, &v["location"]["name"]), (200, &json!("fsn1")), "{v}");
    let zone = json!({"name": "example.com", "mode": "primary"});
    let (s, v, _) = call(&sim, reqwest::Method::POST, "/zones", true, Some(zone)).await;
    assert_eq!(s, 201, "{v}");
    let rr = json!({"name": "www", "type": "A", "records": [{"value": "192.0.2.1"}]});
    let path = "/zones/example.com/rrsets";
    let (s, v, _) = call(&sim, reqwest::Method::POST, path, true, Some(rr)).await;
    assert_eq!(s, 201, "{v}");
    let (s, v, _) = call(
        &sim,
        reqwest::Method::GET,
        &format!("{path}/www/A"),
        true,
        None,
    )
    .await;
    assert_eq!(
        (s, &v["rrset"]["records"][0]["value"]),
        (200, &json!("192.0.2.1")),
        "{v}"
    );
}
