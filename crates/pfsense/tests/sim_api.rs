//! The simulator's REST surface and control API: envelope, auth, validation ids, IDs that
//! renumber, filters and paging, dirty flags with async apply, command_prompt, counters,
//! faults, state dump/load, and no HAProxy left behind after drop.

mod common;

use std::time::Duration;

use cairn_core::tls::{TlsTrust, client_config};
use cairn_pfsense::{ClientError, Subsystem};
use cairn_pfsense_sim::{PfSenseSim, SimConfig, SimHandle};
use common::*;
use serde_json::{Value, json};

fn http(sim: &SimHandle) -> reqwest::Client {
    let tls = client_config(&TlsTrust::Fingerprint(sim.fingerprint.clone().unwrap())).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

async fn api_err(r: Result<Value, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api {
            code, response_id, ..
        }) => (code, response_id),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_need_the_key_or_basic_auth_and_errors_use_the_envelope() {
    let sim = sim(71).await;
    let h = http(&sim);
    let url = format!("{}/api/v2/firewall/aliases", sim.endpoint);
    let r = h.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response_id"], "AUTH_AUTHENTICATION_FAILED");
    assert_eq!(body["status"], "unauthorized");
    let r = h
        .get(&url)
        .basic_auth("admin", Some("pfsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 200);
    assert_eq!(body["data"], json!([]));
}

#[tokio::test]
async fn ids_are_indexes_that_renumber_on_delete_and_plural_filters_page() {
    let sim = sim(72).await;
    let c = client(&sim, Duration::from_secs(5));
    for name in ["a", "b", "c"] {
        c.post(
            "/firewall/alias",
            &json!({"name": name, "type": "host", "address": ["10.0.0.1"]}),
        )
        .await
        .unwrap();
    }
    let gone = c
        .delete("/firewall/alias", &[("id", "0".into())])
        .await
        .unwrap();
    assert_eq!(gone["name"], "a");
    let now0 = c
        .call(
            reqwest::Method::GET,
            "/firewall/alias",
            &[("id", "0".into())],
            None,
        )
        .await
        .unwrap();
    assert_eq!(now0["name"], "b", "ids shift after a delete");
    let missing = c
        .call(
            reqwest::Method::GET,
            "/firewall/alias",
            &[("id", "2".into())],
            None,
        )
        .await;
    assert_eq!(
        api_err(missing).await,
        (404, "MODEL_OBJECT_NOT_FOUND".into())
    );
    let only_c = c
        .list("/firewall/aliases", &[("name", "c".into())])
        .await
        .unwrap();
    assert_eq!(only_c.len(), 1);
    assert_eq!(only_c[0]["id"], 1);
    let page = c
        .list(
            "/firewall/aliases",
            &[("limit", "1".into()), ("offset", "1".into())],
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["name"], "c");
}

#[tokio::test]
async fn validation_errors_carry_the_packages_response_ids() {
    let sim = sim(73).await;
    let c = client(&sim, Duration::from_secs(5));
    let r = c
        .post(
            "/services/haproxy/backend",
            &json!({"balance": "roundrobin"}),
        )
        .await;
    assert_eq!(api_err(r).await, (400, "FIELD_IS_REQUIRED".into()));
    c.post("/services/haproxy/backend", &json!({"name": "p"}))
        .await
        .unwrap();
    let r = c
        .post("/services/haproxy/backend", &json!({"name": "p"}))
        .await;
    assert_eq!(api_err(r).await, (400, "FIELD_MUST_BE_UNIQUE".into()));
    let r = c
        .post(
            "/services/haproxy/backend",
            &json!({"name": "q", "check_type": "Telepathy"}),
        )
        .await;
    assert_eq!(api_err(r).await, (400, "FIELD_INVALID_CHOICE".into()));
    let r = c
        .post(
            "/services/haproxy/backend/server",
            &json!({"parent_id": 7, "name": "s", "address": "10.0.0.1", "port": "80"}),
        )
        .await;
    assert_eq!(
        api_err(r).await,
        (404, "MODEL_PARENT_OBJECT_NOT_FOUND".into())
    );
    let s = c
        .post(
            "/services/haproxy/backend/server",
            &json!({"parent_id": 0, "name": "s", "address": "10.0.0.1", "port": 80}),
        )
        .await
        .unwrap();
    assert_eq!(
        (s["parent_id"].clone(), s["id"].clone(), s["port"].clone()),
        (json!(0), json!(0), json!("80"))
    );
    let servers = c
        .list("/services/haproxy/backend/servers", &[])
        .await
        .unwrap();
    assert_eq!(servers.len(), 1);
}

#[tokio::test]
async fn writes_mark_the_subsystem_dirty_until_an_async_apply_finishes() {
    let sim = sim(74).await;
    let c = client(&sim, Duration::from_secs(5));
    c.post(
        "/services/dns_resolver/host_override",
        &json!({"host": "h", "domain": "d", "ip": ["10.0.0.1"]}),
    )
    .await
    .unwrap();
    let status = c
        .call(
            reqwest::Method::GET,
            "/services/dns_resolver/apply",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(status["applied"], false);
    let haproxy = c
        .call(reqwest::Method::GET, "/services/haproxy/apply", &[], None)
        .await
        .unwrap();
    assert_eq!(haproxy["applied"], true, "other subsystems stay clean");
    c.apply(Subsystem::DnsResolver).await.unwrap();
    let status = c
        .call(
            reqwest::Method::GET,
            "/services/dns_resolver/apply",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(status["applied"], true);
}

#[tokio::test]
async fn command_prompt_runs_haproxy_runtime_commands_and_refuses_others() {
    let sim = sim(75).await;
    let c = client(&sim, Duration::from_secs(10));
    c.post(
        "/services/haproxy/backend",
        &json!({"name": "p", "check_type": "Basic",
        "servers": [{"name": "s1", "address": "10.0.0.1", "port": "9", "status": "disabled"}]}),
    )
    .await
    .unwrap();
    c.apply(Subsystem::Haproxy).await.unwrap();
    let state = c
        .haproxy_runtime("show servers state p_ipvANY")
        .await
        .unwrap();
    let parsed = cairn_pfsense::runtime::parse_servers_state(&state);
    assert_eq!(parsed.len(), 1);
    assert!(parsed[0].in_maint(), "{state}");
    c.haproxy_runtime("set server p_ipvANY/s1 state drain")
        .await
        .unwrap();
    let stat = c.haproxy_runtime("show stat").await.unwrap();
    assert!(stat.contains("p_ipvANY,s1,"), "{stat}");
    let refused = c.command("cat /etc/passwd").await;
    assert_eq!(
        api_err(refused.map(|_| Value::Null)).await,
        (403, "SIM_COMMAND_REFUSED".into())
    );
}

#[tokio::test]
async fn control_api_counts_requests_injects_faults_and_dumps_and_loads_state() {
    let sim = sim(76).await;
    let h = http(&sim);
    let c = client(&sim, Duration::from_secs(5));
    let faults = json!({"rules": [{"methods": ["GET"], "path_prefix": "/api/v2/firewall/aliases",
                         "fault": {"status": 503, "body": {"response_id": "QUEUE_FULL"}},
                         "remaining": 1}]});
    let r = h
        .put(format!("{}/_sim/faults", sim.endpoint))
        .header("X-API-Key", &sim.token)
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The client retries the 503 and succeeds on the second attempt.
    assert!(c.list("/firewall/aliases", &[]).await.unwrap().is_empty());
    c.post(
        "/firewall/alias",
        &json!({"name": "x", "type": "host", "address": ["10.0.0.9"]}),
    )
    .await
    .unwrap();
    let counters: Value = h
        .get(format!("{}/_sim/counters", sim.endpoint))
        .header("X-API-Key", &sim.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["requests"]["GET /api/v2/firewall/aliases"], 2);
    assert_eq!(counters["writes"], 1);

    let dump: Value = h
        .get(format!("{}/_sim/state", sim.endpoint))
        .header("X-API-Key", &sim.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other = PfSenseSim::start(SimConfig::default()).await.unwrap();
    let r = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&other.trust().unwrap()).unwrap())
        .build()
        .unwrap()
        .put(format!("{}/_sim/state", other.endpoint))
        .header("X-API-Key", &other.token)
        .json(&dump)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let oc = client(&other, Duration::from_secs(5));
    assert_eq!(
        oc.list("/firewall/aliases", &[]).await.unwrap()[0]["name"],
        "x"
    );
    let denied = h
        .get(format!("{}/_sim/state", sim.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
}

#[tokio::test]
async fn dropping_the_simulator_kills_every_haproxy_it_started() {
    let sim = sim(77).await;
    let c = client(&sim, Duration::from_secs(10));
    c.post("/services/haproxy/backend", &json!({"name": "p"}))
        .await
        .unwrap();
    c.apply(Subsystem::Haproxy).await.unwrap();
    c.patch(
        "/services/haproxy/backend",
        &json!({"id": 0, "balance": "leastconn"}),
    )
    .await
    .unwrap();
    c.apply(Subsystem::Haproxy).await.unwrap();
    let pids = sim.haproxy_pids();
    assert!(!pids.is_empty());
    drop(sim);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "haproxy {pid} survived the drop"
        );
    }
}

#[tokio::test]
async fn a_missing_haproxy_makes_apply_fail_with_a_clear_message() {
    let sim = PfSenseSim::start(SimConfig {
        haproxy_bin: Some("/nonexistent/haproxy".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = client(&sim, Duration::from_secs(1));
    c.post("/services/haproxy/backend", &json!({"name": "p"}))
        .await
        .unwrap();
    let err = c.apply(Subsystem::Haproxy).await.unwrap_err();
    assert!(matches!(err, ClientError::Rejected { .. }), "{err}");
    let why = sim.last_apply_error().unwrap();
    assert!(
        why.contains("haproxy not found") && why.contains("apt-get install haproxy"),
        "{why}"
    );
}

#[tokio::test]
async fn a_503_on_apply_is_retried_and_the_apply_still_completes() {
    let sim = sim(85).await;
    sim.set_faults(cairn_pfsense_sim::FaultConfig {
        rules: vec![cairn_pfsense_sim::FaultRule {
            methods: vec!["POST".into()],
            path_prefix: "/api/v2/firewall/virtual_ip/apply".into(),
            remaining: Some(1),
            fault: Some(cairn_pfsense_sim::api_error(503, "QUEUE_FULL")),
            ..Default::default()
        }],
        ..Default::default()
    });
    let c = client(&sim, Duration::from_secs(5));
    c.post(
        "/firewall/virtual_ip",
        &json!({"mode": "ipalias", "interface": "lan", "subnet": "10.0.20.99", "subnet_bits": 24}),
    )
    .await
    .unwrap();
    c.apply(Subsystem::VirtualIp)
        .await
        .expect("retried past the 503");
    assert_eq!(
        sim.counters().requests["POST /api/v2/firewall/virtual_ip/apply"],
        2
    );
}

/// Set in the child process of the SIGKILL test: start a simulator, print the HAProxy pids,
/// and wait to be killed.
const KILL_CHILD_ENV: &str = "CAIRN_PFSENSE_KILL_TEST_CHILD";

#[tokio::test]
async fn helper_simulator_process_for_the_sigkill_test() {
    // Only does something when run as the child of the test below.
    if std::env::var(KILL_CHILD_ENV).is_err() {
        return;
    }
    let sim = sim(86).await;
    let c = client(&sim, Duration::from_secs(10));
    c.post("/services/haproxy/backend", &json!({"name": "p"}))
        .await
        .unwrap();
    c.apply(Subsystem::Haproxy).await.unwrap();
    println!("DIR {}", sim.dir().display());
    println!("PIDS {:?}", sim.haproxy_pids());
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[test]
fn a_simulator_killed_with_sigkill_leaves_no_haproxy_behind() {
    require_haproxy();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_simulator_process_for_the_sigkill_test",
            "--nocapture",
        ])
        .env(KILL_CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout)).map(Result::unwrap);
    let dir = lines
        .find_map(|l| l.strip_prefix("DIR ").map(str::to_string))
        .expect("child printed its temp dir");
    let line = lines
        .find(|l| l.starts_with("PIDS "))
        .expect("child printed its HAProxy pids");
    let pids: Vec<u32> = serde_json::from_str(line.trim_start_matches("PIDS ")).unwrap();
    assert!(!pids.is_empty());
    child.kill().unwrap(); // SIGKILL: no Drop runs in the child
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let alive = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
    };
    while pids.iter().any(alive) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The killed child could not remove its temp dir.
    let _ = std::fs::remove_dir_all(&dir);
    let left: Vec<&u32> = pids.iter().filter(|p| alive(p)).collect();
    assert!(
        left.is_empty(),
        "HAProxy {left:?} outlived its killed simulator"
    );
}

#[tokio::test]
async fn tls_is_trusted_by_ca_file_or_pin_and_a_wrong_pin_is_refused() {
    let sim = sim(88).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("pfsense.pem");
    std::fs::write(&ca, sim.cert_pem.as_deref().unwrap()).unwrap();
    let by_ca = cairn_pfsense::PfSenseClient::new(
        &sim.endpoint,
        cairn_pfsense::ApiKey::new(&sim.token),
        &TlsTrust::CaFile(ca),
    )
    .unwrap();
    assert!(
        by_ca
            .list("/firewall/aliases", &[])
            .await
            .unwrap()
            .is_empty()
    );
    let wrong = cairn_pfsense::PfSenseClient::new(
        &sim.endpoint,
        cairn_pfsense::ApiKey::new(&sim.token),
        &TlsTrust::Fingerprint(["AB"; 32].join(":")),
    )
    .unwrap();
    let err = wrong.list("/firewall/aliases", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    assert!(err.to_string().contains("fingerprint"), "{err}");
    assert!(!err.to_string().contains(&sim.token));
}

#[tokio::test]
async fn a_jwt_from_basic_auth_works_as_bearer_and_apply_true_applies_the_write() {
    let sim = sim(89).await;
    let h = http(&sim);
    let url = |p: &str| format!("{}/api/v2{p}", sim.endpoint);
    let denied = h
        .post(url("/auth/jwt"))
        .header("X-API-Key", &sim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401, "JWTs are for basic-auth clients");
    let body: Value = h
        .post(url("/auth/jwt"))
        .basic_auth("admin", Some("pfsense"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["data"]["token"].as_str().unwrap().to_string();
    let r = h
        .post(url("/services/dns_resolver/host_override"))
        .bearer_auth(&token)
        .json(&json!({"host": "h", "domain": "d", "ip": ["10.0.0.1"], "apply": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status: Value = h
            .get(url("/services/dns_resolver/apply"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["data"]["applied"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "apply: true never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bad = h
        .get(url("/firewall/aliases"))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
}

#[tokio::test]
async fn unknown_endpoints_and_methods_answer_as_the_package_does_and_are_counted() {
    let sim = sim(99).await;
    let h = http(&sim);
    let key = sim.token.clone();
    let send = |m: reqwest::Method, path: &str, auth: bool| {
        let rq = h.request(m, format!("{}{path}", sim.endpoint));
        let rq = if auth {
            rq.header("X-API-Key", &key)
        } else {
            rq
        };
        async move {
            let r = rq.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (
                status,
                body["response_id"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    sim.reset_counters();
    let get = reqwest::Method::GET;
    assert_eq!(
        send(get.clone(), "/api/v2/no/such/thing", true).await,
        (404, "ENDPOINT_NOT_FOUND".into())
    );
    // A model path with a method the package does not serve there.
    assert_eq!(
        send(reqwest::Method::PUT, "/api/v2/firewall/alias", true).await,
        (405, "METHOD_NOT_ALLOWED".into())
    );
    assert_eq!(
        send(
            reqwest::Method::PUT,
            "/api/v2/services/haproxy/backend/servers",
            true
        )
        .await,
        (405, "METHOD_NOT_ALLOWED".into()),
        "a nested plural cannot be replaced whole"
    );
    // Authentication comes before routing.
    assert_eq!(
        send(get.clone(), "/api/v2/no/such/thing", false).await,
        (401, "AUTH_AUTHENTICATION_FAILED".into())
    );
    assert_eq!(
        send(get, "/api/v2/firewall/aliases", true).await,
        (200, "SUCCESS".into())
    );
    let c = sim.counters();
    assert_eq!(c.total, 5, "{c:?}");
    assert_eq!(
        c.requests.get("GET /api/v2/no/such/thing"),
        Some(&2),
        "{c:?}"
    );
}

#[tokio::test]
async fn a_table_entries_limit_set_through_sim_fails_the_firewall_apply_until_raised() {
    let sim = sim(64).await;
    let h = http(&sim);
    let key = sim.token.clone();
    let api = |m: reqwest::Method, path: &str, body: Option<Value>| {
        let mut rq = h
            .request(m, format!("{}{path}", sim.endpoint))
            .header("X-API-Key", &key);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        async move {
            let r = rq.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let put = reqwest::Method::PUT;
    let (s, caps) = api(
        put.clone(),
        "/_sim/capacities",
        Some(json!({"max_table_entries": 3})),
    )
    .await;
    assert_eq!((s, &caps["max_table_entries"]), (200, &json!(3)), "{caps}");
    let alias = json!({"name": "big", "type": "host",
                       "address": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]});
    let (s, v) = api(reqwest::Method::POST, "/api/v2/firewall/alias", Some(alias)).await;
    assert_eq!(s, 200, "{v}");

    api(reqwest::Method::POST, "/api/v2/firewall/apply", None).await;
    let mut error = Value::Null;
    for _ in 0..200 {
        error =
            api(reqwest::Method::GET, "/_sim/haproxy", None).await.1["last_apply_error"].clone();
        if !error.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = error.as_str().expect("the apply failed").to_string();
    assert!(
        error.contains("cannot define table big: Cannot allocate memory"),
        "{error}"
    );
    let (_, v) = api(reqwest::Method::GET, "/api/v2/firewall/apply", None).await;
    assert_eq!(v["data"]["applied"], false, "the firewall stays dirty");

    let (s, _) = api(
        put,
        "/_sim/capacities",
        Some(json!({"max_table_entries": 4})),
    )
    .await;
    assert_eq!(s, 200);
    api(reqwest::Method::POST, "/api/v2/firewall/apply", None).await;
    let mut applied = false;
    for _ in 0..200 {
        let (_, v) = api(reqwest::Method::GET, "/api/v2/firewall/apply", None).await;
        applied = v["data"]["applied"] == true;
        if applied {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(applied, "the same aliases load once the limit allows them");
}
