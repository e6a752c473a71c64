//! Every kind through the `Provider` trait against the simulator: create, observe (with the
//! marker split from the labels), update in place, delete, and adoption of hand-made
//! objects.

mod common;

use cairn_core::{Address, Change, Provider, Resource};
use cairn_hetzner::*;
use common::*;

#[tokio::test]
async fn ssh_key_network_and_server_are_created_observed_updated_and_deleted() {
    let sim = sim().await;
    let p = provider(&sim);
    let key = SshKey {
        name: "ops".into(),
        public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@host".into(),
        labels: [("team".to_string(), "infra".to_string())].into(),
    };
    let kv = create(&p, &key).await;
    assert!(diff_of(&key, &kv).is_empty(), "{:?}", diff_of(&key, &kv));

    let mut net = Network::new("net", "10.0.0.0/16", "10.0.1.0/24");
    let nv = create(&p, &net).await;
    assert!(diff_of(&net, &nv).is_empty(), "{:?}", diff_of(&net, &nv));
    let net_id = nv["id"].as_u64().unwrap();

    let mut srv = Server::new("web-1", "cax11", "ubuntu-24.04", "fsn1");
    srv.user_data = Some("#cloud-config\n".into());
    srv.ssh_keys = Some(vec!["ops".into()]);
    srv.networks = Some(vec![ServerNetwork {
        network: net_id.into(),
        ip: Some("10.0.1.20".parse().unwrap()),
    }]);
    let sv = create(&p, &srv).await;
    assert!(diff_of(&srv, &sv).is_empty(), "{:?}", diff_of(&srv, &sv));
    assert!(sv["ipv4"].as_str().unwrap().starts_with("203.0.113."));

    let obs = observe_one(&p, &srv).await;
    assert_eq!(obs.marker.as_ref().map(|m| m.stack.as_str()), Some("t"));
    assert!(
        obs.value["labels"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("cairn.dev/")),
        "marker labels leak: {}",
        obs.value["labels"]
    );
    assert!(diff_of(&srv, &obs.value).is_empty());

    // In place: labels, a new subnet (one action), a second server network IP.
    srv.labels.insert("tier".into(), "web".into());
    net.subnets.push(Subnet {
        kind: SubnetType::Cloud,
        network_zone: "eu-central".into(),
        ip_range: "10.0.2.0/24".into(),
    });
    let nobs = observe_one(&p, &net).await;
    sim.reset_counters();
    let nv = update(&p, &net, &nobs).await;
    assert!(diff_of(&net, &nv).is_empty(), "{:?}", diff_of(&net, &nv));
    let c = sim.counters();
    assert_eq!(
        c.matching("POST /v1/networks/{id}/actions/add_subnet"),
        1,
        "{:?}",
        c.requests
    );
    assert_eq!(c.matching("POST /v1/networks "), 0);
    let sv = update(&p, &srv, &obs).await;
    assert!(diff_of(&srv, &sv).is_empty(), "{:?}", diff_of(&srv, &sv));

    // Changing the user data shows as a replace-forcing difference.
    let mut changed = srv.clone();
    changed.user_data = Some("#cloud-config\npackages: [curl]\n".into());
    let _ = p.validate(&[cairn_core::Declared {
        address: &Address::new("hetzner_server", "web-1"),
        kind: "hetzner_server",
        key: "web-1",
        spec: &serde_json::to_value(&changed).unwrap(),
    }]);
    let obs = observe_one(&p, &changed).await;
    assert_eq!(diff_of(&changed, &obs.value), vec!["user_data".to_string()]);

    // Delete (server first, then the network and the key).
    for (kind, key, prior) in [
        ("hetzner_server", "web-1", observe_one(&p, &srv).await),
        ("hetzner_network", "net", observe_one(&p, &net).await),
        ("hetzner_ssh_key", "ops", observe_one(&p, &key).await),
    ] {
        let addr = Address::new(kind, key);
        let m = marker("t");
        p.delete(Change {
            address: &addr,
            kind,
            key,
            desired: None,
            prior: Some(&prior),
            marker: &m,
            changed: &[],
        })
        .await
        .unwrap();
    }
    assert!(observe::<Server>(&p, &["web-1".into()]).await.is_empty());
    assert!(observe::<Network>(&p, &["net".into()]).await.is_empty());
    assert!(observe::<SshKey>(&p, &["ops".into()]).await.is_empty());
}

#[tokio::test]
async fn load_balancer_targets_and_services_change_one_action_each() {
    let sim = sim().await;
    let p = provider(&sim);
    let nv = create(&p, &Network::new("net", "10.0.0.0/16", "10.0.1.0/24")).await;
    let net = nv["id"].as_u64().unwrap();
    let mut ids = Vec::new();
    for n in ["w1", "w2"] {
        let mut s = Server::new(n, "cax11", "ubuntu-24.04", "fsn1");
        s.networks = Some(vec![ServerNetwork {
            network: net.into(),
            ip: None,
        }]);
        ids.push(create(&p, &s).await["id"].as_u64().unwrap());
    }
    let mut lb = LoadBalancer {
        name: "lb".into(),
        load_balancer_type: "lb11".into(),
        location: "fsn1".into(),
        algorithm: Algorithm::default(),
        labels: Labels::new(),
        private_net: Some(vec![LbNetwork {
            network: net.into(),
            ip: Some("10.0.1.5".parse().unwrap()),
        }]),
        services: vec![Service::tcp(80)],
        targets: vec![Target::private_server(ids[0])],
    };
    let v = create(&p, &lb).await;
    assert!(diff_of(&lb, &v).is_empty(), "{:?}", diff_of(&lb, &v));
    assert_eq!(v["private_net"][0]["ip"], "10.0.1.5");
    assert_eq!(v["targets"][0]["health_status"][0]["status"], "healthy");

    lb.targets.push(Target::private_server(ids[1]));
    lb.services.push(Service::tcp(443));
    lb.services[0].health_check.interval = 20;
    let prior = observe_one(&p, &lb).await;
    sim.reset_counters();
    let v = update(&p, &lb, &prior).await;
    assert!(diff_of(&lb, &v).is_empty(), "{:?}", diff_of(&lb, &v));
    let c = sim.counters();
    assert_eq!(
        c.matching("POST /v1/load_balancers/{id}/actions/add_target"),
        1,
        "{:?}",
        c.requests
    );
    assert_eq!(
        c.matching("POST /v1/load_balancers/{id}/actions/add_service"),
        1
    );
    assert_eq!(
        c.matching("POST /v1/load_balancers/{id}/actions/update_service"),
        1
    );
    assert_eq!(
        c.matching("POST /v1/load_balancers/{id}/actions/remove_target"),
        0
    );
    assert_eq!(c.matching("DELETE"), 0);
    assert_eq!(c.matching("POST /v1/load_balancers "), 0);
}

#[tokio::test]
async fn firewall_zone_and_rrset_round_trip() {
    let sim = sim().await;
    let p = provider(&sim);
    let srv = create(&p, &Server::new("mgr", "cax11", "ubuntu-24.04", "fsn1")).await;
    let mut fw = Firewall {
        name: "fw".into(),
        labels: Labels::new(),
        rules: vec![Rule::tcp_in("6443", &["10.0.0.0/16", "203.0.113.7/32"])],
        apply_to: vec![ApplyTo::server(srv["id"].as_u64().unwrap())],
    };
    let v = create(&p, &fw).await;
    assert!(diff_of(&fw, &v).is_empty(), "{:?}", diff_of(&fw, &v));
    fw.rules[0].source_ips.reverse();
    let prior = observe_one(&p, &fw).await;
    assert!(
        diff_of(&fw, &prior.value).is_empty(),
        "source_ips are a set"
    );
    fw.rules.push(Rule::tcp_in("80", &["0.0.0.0/0"]));
    sim.reset_counters();
    let v = update(&p, &fw, &prior).await;
    assert!(diff_of(&fw, &v).is_empty(), "{:?}", diff_of(&fw, &v));
    assert_eq!(
        sim.counters()
            .matching("POST /v1/firewalls/{id}/actions/set_rules"),
        1
    );

    let zone = Zone::primary("docfast.dev");
    let zv = create(&p, &zone).await;
    assert!(diff_of(&zone, &zv).is_empty(), "{:?}", diff_of(&zone, &zv));
    let mut rr = RRSet::a(
        "docfast.dev",
        "@",
        "203.0.113.9".parse::<std::net::Ipv4Addr>().unwrap(),
    );
    let v = create(&p, &rr).await;
    assert!(diff_of(&rr, &v).is_empty(), "{:?}", diff_of(&rr, &v));
    rr.records.push(Record::a(
        "203.0.113.10".parse::<std::net::Ipv4Addr>().unwrap(),
    ));
    rr.ttl = Some(300);
    let prior = observe_one(&p, &rr).await;
    assert_eq!(prior.key, "docfast.dev/@/A");
    let v = update(&p, &rr, &prior).await;
    assert!(diff_of(&rr, &v).is_empty(), "{:?}", diff_of(&rr, &v));
    let addr = Address::new("hetzner_rrset", "apex");
    let m = marker("t");
    let prior = observe_one(&p, &rr).await;
    p.delete(Change {
        address: &addr,
        kind: "hetzner_rrset",
        key: &prior.key,
        desired: None,
        prior: Some(&prior),
        marker: &m,
        changed: &[],
    })
    .await
    .unwrap();
    assert!(observe::<RRSet>(&p, &[rr.key()]).await.is_empty());
}

#[tokio::test]
async fn hand_made_unlabelled_objects_are_adopted_with_no_marker_and_same_values() {
    let sim = sim().await;
    let p = provider(&sim);
    let c = p.client();
    let net: serde_json::Value = c
        .request(reqwest::Method::POST, "/networks", &[], Some(&serde_json::json!({"name": "net", "ip_range": "10.0.0.0/16", "subnets": [{"type": "cloud", "network_zone": "eu-central", "ip_range": "10.0.1.0/24"}]})), false)
        .await
        .unwrap();
    let net_id = net["network"]["id"].as_u64().unwrap();
    c.request(reqwest::Method::POST, "/servers", &[], Some(&serde_json::json!({"name": "web", "server_type": "cax11", "image": "ubuntu-24.04", "location": "fsn1", "networks": [net_id], "labels": {"tier": "web"}})), false)
        .await
        .unwrap();
    let mut srv = Server::new("web", "cax11", "ubuntu-24.04", "fsn1");
    srv.labels.insert("tier".into(), "web".into());
    srv.user_data = Some("#cloud-config\n".into());
    srv.networks = Some(vec![ServerNetwork {
        network: net_id.into(),
        ip: None,
    }]);
    let _ = p.validate(&[cairn_core::Declared {
        address: &Address::new("hetzner_server", "web"),
        kind: "hetzner_server",
        key: "web",
        spec: &serde_json::to_value(&srv).unwrap(),
    }]);
    let o = observe_one(&p, &srv).await;
    assert_eq!(o.marker, None);
    assert!(
        diff_of(&srv, &o.value).is_empty(),
        "{:?}",
        diff_of(&srv, &o.value)
    );
    let n = observe_one(&p, &Network::new("net", "10.0.0.0/16", "10.0.1.0/24")).await;
    assert_eq!(n.marker, None);
    assert!(diff_of(&Network::new("net", "10.0.0.0/16", "10.0.1.0/24"), &n.value).is_empty());
    // Adopting writes the marker and keeps the user label.
    update(&p, &srv, &o).await;
    let o = observe_one(&p, &srv).await;
    assert_eq!(o.marker.map(|m| m.stack), Some("t".to_string()));
    assert_eq!(o.value["labels"]["tier"], "web");
}

#[tokio::test]
async fn pinned_primary_ip_is_the_server_address_and_survives_the_server() {
    let sim = sim().await;
    let p = provider(&sim);
    let mut ip = PrimaryIp {
        name: "api-ip".into(),
        kind: IpType::Ipv4,
        location: "fsn1".into(),
        auto_delete: false,
        labels: Labels::new(),
    };
    let iv = create(&p, &ip).await;
    assert!(diff_of(&ip, &iv).is_empty(), "{:?}", diff_of(&ip, &iv));
    let addr = iv["ip"].as_str().unwrap().to_string();
    let mut srv = Server::new("api", "cx22", "debian-12", "fsn1");
    srv.public_net = Some(ServerPublicNet {
        ipv4: Some(iv["id"].as_u64().unwrap().into()),
    });
    let sv = create(&p, &srv).await;
    assert!(diff_of(&srv, &sv).is_empty(), "{:?}", diff_of(&srv, &sv));
    assert_eq!(
        sv["ipv4"],
        addr.as_str(),
        "the server uses the pinned address"
    );
    let prior = observe_one(&p, &srv).await;
    let a = Address::new("hetzner_server", "api");
    let m = marker("t");
    p.delete(Change {
        address: &a,
        kind: "hetzner_server",
        key: "api",
        desired: None,
        prior: Some(&prior),
        marker: &m,
        changed: &[],
    })
    .await
    .unwrap();
    let o = observe_one(&p, &ip).await;
    assert_eq!(
        o.value["ip"],
        addr.as_str(),
        "auto_delete=false keeps the address"
    );
    assert!(o.value["assignee_id"].is_null());
    ip.auto_delete = true;
    ip.labels.insert("purpose".into(), "api".into());
    let v = update(&p, &ip, &o).await;
    assert!(diff_of(&ip, &v).is_empty(), "{:?}", diff_of(&ip, &v));
}

#[tokio::test]
async fn server_type_changes_in_place_by_stopping_changing_and_starting() {
    let sim = sim().await;
    let p = provider(&sim);
    let mut srv = Server::new("grow", "cx22", "debian-12", "fsn1");
    let before = create(&p, &srv).await;
    srv.server_type = "cx32".into();
    let prior = observe_one(&p, &srv).await;
    assert_eq!(diff_of(&srv, &prior.value), ["server_type"]);
    sim.reset_counters();
    let after = update(&p, &srv, &prior).await;
    assert!(
        diff_of(&srv, &after).is_empty(),
        "{:?}",
        diff_of(&srv, &after)
    );
    assert_eq!(after["id"], before["id"], "same server, not a replace");
    assert_eq!(after["status"], "running");
    let c = sim.counters();
    let order: Vec<&str> = ["shutdown", "change_type", "poweron"]
        .into_iter()
        .filter(|a| c.matching(&format!("POST /v1/servers/{{id}}/actions/{a}")) == 1)
        .collect();
    assert_eq!(
        order,
        ["shutdown", "change_type", "poweron"],
        "{:?}",
        c.requests
    );
}
