//! Shared test fixtures: a simulator, a provider pointed at it, and the Hetzner part of the
//! k3s stack.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use cairn_core::{
    Address, Change, Marker, ObserveRequest, Observed, Provider, Providers, Resource, Stack,
    StackBuilder,
};
use cairn_hetzner::client::{ClientConfig, Token};
use cairn_hetzner::*;
use cairn_hetzner_sim::{HetznerSim, SimConfig, SimHandle};
use serde_json::Value;

/// A simulator with short actions.
pub async fn sim() -> SimHandle {
    HetznerSim::start(SimConfig {
        action_time: Duration::from_millis(30),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// A provider pointed at the simulator, with fast polling and backoff, and a fixed digest
/// key (no key file is made in the user's state directory).
pub fn provider(sim: &SimHandle) -> HetznerProvider {
    provider_with_key(sim, b"hetzner-tests-digest-key")
}

/// [`provider`] with the digest key `secret` (another machine has another key).
pub fn provider_with_key(sim: &SimHandle, secret: &[u8]) -> HetznerProvider {
    let mut cfg = ClientConfig::new(&sim.endpoint, Token::new(&sim.token));
    cfg.poll_interval = Duration::from_millis(10);
    cfg.backoff = Duration::from_millis(20);
    cfg.max_backoff = Duration::from_millis(400);
    cfg.timeout = Duration::from_secs(10);
    HetznerProvider::new(cfg)
        .expect("provider")
        .with_digest_key(cairn_core::digest_key::DigestKey::new(secret))
}

/// Providers with the Hetzner provider.
pub fn providers(p: HetznerProvider) -> Providers {
    Providers::new().with(Arc::new(p))
}

/// The marker tests write.
pub fn marker(stack: &str) -> Marker {
    Marker::created(stack, Some("0123456789abcdef".into()))
}

/// Creates `spec` through the provider (no engine), returning the observed value.
pub async fn create<R: Resource>(p: &HetznerProvider, spec: &R) -> Value {
    let v = serde_json::to_value(spec).unwrap();
    let addr = Address::new(R::KIND, &spec.key());
    let m = marker("t");
    p.create(Change {
        address: &addr,
        kind: R::KIND,
        key: &spec.key(),
        desired: Some(&v),
        prior: None,
        marker: &m,
        changed: &[],
    })
    .await
    .unwrap_or_else(|e| panic!("create {addr}: {e}"))
}

/// Updates `spec` through the provider from the prior observation.
pub async fn update<R: Resource>(p: &HetznerProvider, spec: &R, prior: &Observed) -> Value {
    let v = serde_json::to_value(spec).unwrap();
    let addr = Address::new(R::KIND, &spec.key());
    let m = marker("t");
    p.update(Change {
        address: &addr,
        kind: R::KIND,
        key: &spec.key(),
        desired: Some(&v),
        prior: Some(prior),
        marker: &m,
        changed: &[],
    })
    .await
    .unwrap_or_else(|e| panic!("update {addr}: {e}"))
}

/// Observes one kind for declared keys and stack `t`.
pub async fn observe<R: Resource>(p: &HetznerProvider, keys: &[String]) -> Vec<Observed> {
    p.observe(ObserveRequest {
        kind: R::KIND,
        keys,
        stack: "t",
    })
    .await
    .expect("observe")
}

/// Observes the one object with `spec`'s key.
pub async fn observe_one<R: Resource>(p: &HetznerProvider, spec: &R) -> Observed {
    let obs = observe::<R>(p, &[spec.key()]).await;
    obs.into_iter()
        .find(|o| o.key == spec.key())
        .unwrap_or_else(|| panic!("{} {} not observed", R::KIND, spec.key()))
}

/// The field-level differences between a spec and an observation (empty = converged).
pub fn diff_of<R: Resource>(spec: &R, observed: &Value) -> Vec<String> {
    let v = serde_json::to_value(spec).unwrap();
    cairn_core::diff::diff(&v, observed, &R::schema(), &[])
        .into_iter()
        .map(|c| c.path)
        .collect()
}

/// The Hetzner part of the k3s stack: 3 CAX11 servers on 10.0.0.0/16, the LB `k3s-lb` with
/// targets w1/w2 on 80/443 (TCP checks 15 s / 10 s / 3 retries), a firewall opening 6443 to
/// the network and one CI runner /32, and zone `docfast.dev` with A records at the LB.
pub fn k3s_stack(name: &str) -> Stack {
    k3s_stack_with(name, "ubuntu-24.04")
}

/// The k3s stack with `k3s-w1` on `w1_image`.
pub fn k3s_stack_with(name: &str, w1_image: &str) -> Stack {
    let mut s = StackBuilder::new(name);
    let net = s.add(
        "k3s-net",
        Network::new("k3s-net", "10.0.0.0/16", "10.0.1.0/24"),
    );
    let mut handles = Vec::new();
    for (n, ip, role) in [
        ("k3s-mgr", "10.0.1.10", "server"),
        ("k3s-w1", "10.0.1.11", "agent"),
        ("k3s-w2", "10.0.1.12", "agent"),
    ] {
        let image = if n == "k3s-w1" {
            w1_image
        } else {
            "ubuntu-24.04"
        };
        let mut srv = Server::new(n, "cax11", image, "fsn1");
        srv.labels.insert("k3s-role".into(), role.into());
        srv.user_data = Some(format!("#cloud-config\nhostname: {n}\n"));
        srv.networks = Some(vec![ServerNetwork {
            network: net.id().into(),
            ip: Some(ip.parse().unwrap()),
        }]);
        handles.push(s.add(n, srv));
    }
    let lb = s.add(
        "k3s-lb",
        LoadBalancer {
            name: "k3s-lb".into(),
            load_balancer_type: "lb11".into(),
            location: "fsn1".into(),
            algorithm: Algorithm::default(),
            labels: Labels::new(),
            private_net: Some(vec![LbNetwork {
                network: net.id().into(),
                ip: Some("10.0.1.5".parse().unwrap()),
            }]),
            services: vec![Service::tcp(80), Service::tcp(443)],
            targets: vec![
                Target::private_server(handles[1].id()),
                Target::private_server(handles[2].id()),
            ],
        },
    );
    s.add(
        "k3s-fw",
        Firewall {
            name: "k3s-fw".into(),
            labels: Labels::new(),
            rules: vec![Rule::tcp_in("6443", &["10.0.0.0/16", "203.0.113.7/32"])],
            apply_to: vec![ApplyTo::server(handles[0].id())],
        },
    );
    let zone = s.add("docfast", Zone::primary("docfast.dev"));
    let apex = s.add("apex", RRSet::a("docfast.dev", "@", lb.ipv4()));
    let staging = s.add("staging", RRSet::a("docfast.dev", "staging", lb.ipv4()));
    s.depends_on(&apex, &zone);
    s.depends_on(&staging, &zone);
    s.build().expect("k3s stack builds")
}
