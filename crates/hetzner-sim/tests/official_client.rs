//! The simulator as the official Python `hcloud` library (the client under the Ansible
//! `hetzner.hcloud` collection) sees it: one test per way the simulator used to differ from
//! the real API. Each test runs an inline script with the unmodified library, only
//! `api_endpoint` pointed at the simulator, so the client's own expectations are what is
//! checked; the script prints `OK` at its end.
//!
//! The interpreter is `CAIRN_TEST_PYTHON`, else the workspace's `.venv/bin/python`.

use std::path::PathBuf;
use std::time::Duration;

use cairn_hetzner_sim::{HetznerSim, SimConfig, SimHandle};

/// What every script starts with: the client and two helpers.
const PRELUDE: &str = r#"
import base64, hashlib, os, sys
from hcloud import Client, APIException
from hcloud.datacenters import Datacenter
from hcloud.images import Image
from hcloud.load_balancer_types import LoadBalancerType
from hcloud.locations import Location
from hcloud.networks import NetworkSubnet
from hcloud.placement_groups import PlacementGroup
from hcloud.server_types import ServerType
from hcloud.servers import ServerCreatePublicNetwork
from hcloud.zones import ZonePrimaryNameserver, ZoneRecord

client = Client(token=os.environ["HCLOUD_TOKEN"], api_endpoint=os.environ["HCLOUD_ENDPOINT"],
                poll_interval=0.02)

def refused(code, fn, *args, **kwargs):
    """Runs fn, which must fail with API error `code`; returns the exception."""
    try:
        fn(*args, **kwargs)
    except APIException as e:
        assert e.code == code, f"expected {code}, got {e.code}: {e.message}"
        return e
    raise AssertionError(f"expected APIException {code}")

def server(name, **kw):
    kw.setdefault("server_type", ServerType(name="cx22"))
    kw.setdefault("image", Image(name="debian-12"))
    r = client.servers.create(name=name, **kw)
    r.action.wait_until_finished()
    for a in r.next_actions:
        a.wait_until_finished()
    return client.servers.get_by_id(r.server.id)
"#;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CAIRN_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        p.exists(),
        "no Python with the `hcloud` library at {} and CAIRN_TEST_PYTHON is unset: run `scripts/test.sh` (it creates the venv) or point CAIRN_TEST_PYTHON at one",
        p.display()
    );
    p
}

/// A simulator whose actions run for 60 ms.
async fn sim() -> SimHandle {
    sim_with(Duration::from_millis(60)).await
}

/// A simulator whose actions run for `action_time` (long enough, where a script relies on an
/// action still running at its next request, for that to hold on a loaded machine).
async fn sim_with(action_time: Duration) -> SimHandle {
    HetznerSim::start(SimConfig {
        action_time,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// Runs `script` (after [`PRELUDE`]) against `sim`; it must exit 0 and print `OK` last.
async fn run(sim: &SimHandle, script: &str) {
    let py = python();
    let out = tokio::process::Command::new(&py)
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}\nprint('OK')\n"))
        .env("HCLOUD_TOKEN", &sim.token)
        .env("HCLOUD_ENDPOINT", &sim.endpoint)
        .env("NO_PROXY", "*")
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'hcloud'"),
        "{} has no `hcloud` library",
        py.display()
    );
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "python client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// Difference 1: every "ID or name" field of a create takes the id too (as a JSON number,
/// which is what the client sends once it has looked a location up).
#[tokio::test]
async fn id_or_name_fields_take_ids_on_every_create() {
    let sim = sim().await;
    run(
        &sim,
        r#"
lb = client.load_balancers.create(name="lb", load_balancer_type=LoadBalancerType(id=1),
                                  location=Location(id=3))
lb.action.wait_until_finished()
lb = client.load_balancers.get_by_id(lb.load_balancer.id)
assert (lb.location.name, lb.load_balancer_type.name) == ("hel1", "lb11"), lb.location.name
s = server("by-ids", server_type=ServerType(id=104), image=Image(id=114690387), location=Location(id=2))
assert (s.server_type.name, s.image.name, s.location.name) == ("cx22", "debian-12", "nbg1")
# This client version no longer sends `datacenter`; the API still takes it (ID or name).
raw = lambda name, dc: client.request("POST", "/servers", json={
    "name": name, "server_type": "cx22", "image": "debian-12", "datacenter": dc})["server"]
s = raw("by-dc-id", 3)
assert (s["datacenter"]["name"], s["location"]["name"]) == ("hel1-dc2", "hel1"), s["datacenter"]
assert raw("by-dc-name", "fsn1-dc14")["datacenter"]["id"] == 4
assert raw("by-dc-string-id", "2")["datacenter"]["name"] == "nbg1-dc3"
ip = client.primary_ips.create(type="ipv4", name="ip", location=Location(id=4)).primary_ip
assert ip.location.name == "ash", ip.location.name
assert client.request("GET", f"/primary_ips/{ip.id}")["primary_ip"]["datacenter"]["name"] == "ash-dc1"
v = client.volumes.create(size=10, name="vol", location=Location(id=1)).volume
assert v.location.name == "fsn1"
refused("invalid_input", client.load_balancers.create, name="nowhere",
        load_balancer_type=LoadBalancerType(name="lb11"), location=Location(id=99))
"#,
    )
    .await;
    assert_eq!(sim.counters().get("POST /v1/load_balancers"), 2);
}

/// Difference 2: protection is enforced on every resource that has it, set through each
/// resource's `change_protection`, and a protected delete or change answers `protected`.
#[tokio::test]
async fn protected_resources_refuse_deletes_and_changes_with_protected() {
    let sim = sim().await;
    run(
        &sim,
        r#"
net = client.networks.create(name="n", ip_range="10.0.0.0/16")
net.change_protection(delete=True).wait_until_finished()
assert client.networks.get_by_id(net.id).protection["delete"] is True
refused("protected", net.delete)
net.change_protection(delete=False).wait_until_finished()
assert net.delete()

r = client.load_balancers.create(name="lb", load_balancer_type=LoadBalancerType(name="lb11"),
                                 location=Location(name="fsn1"))
r.action.wait_until_finished()
lb = r.load_balancer
client.load_balancers.get_by_id(lb.id).change_protection(delete=True).wait_until_finished()
refused("protected", client.load_balancers.delete, lb)
client.load_balancers.change_protection(lb, delete=False).wait_until_finished()
client.load_balancers.delete(lb)

s = server("web")
s.change_protection(delete=True, rebuild=True).wait_until_finished()
s = client.servers.get_by_id(s.id)
assert s.protection == {"delete": True, "rebuild": True}, s.protection
refused("protected", s.delete)
refused("protected", s.rebuild, Image(name="ubuntu-24.04"))
refused("invalid_input", s.change_protection, delete=False, rebuild=True)
s.change_protection(delete=False, rebuild=False).wait_until_finished()
s.delete().wait_until_finished()

ip = client.primary_ips.create(type="ipv4", name="ip", location=Location(name="fsn1")).primary_ip
ip.change_protection(delete=True).wait_until_finished()
refused("protected", client.primary_ips.delete, ip)

r = client.volumes.create(size=10, name="v", location=Location(name="fsn1"))
r.action.wait_until_finished()
vol = r.volume
vol.change_protection(delete=True).wait_until_finished()
refused("protected", vol.delete)

zone = client.zones.create(name="example.com", mode="primary").zone
zone.change_protection(delete=True).wait_until_finished()
assert client.zones.get(zone.name).protection["delete"] is True
refused("protected", zone.delete)
rr = client.zones.create_rrset(zone, name="www", type="A", records=[ZoneRecord(value="203.0.113.10")]).rrset
client.zones.change_rrset_protection(rr, change=True).wait_until_finished()
rr = client.zones.get_rrset(zone, "www", "A")
assert rr.protection["change"] is True
refused("protected", client.zones.set_rrset_records, rr, [ZoneRecord(value="203.0.113.11")])
refused("protected", client.zones.change_rrset_ttl, rr, 600)
refused("protected", client.zones.delete_rrset, rr)
assert client.zones.get_rrset(zone, "www", "A").records[0].value == "203.0.113.10"
client.zones.change_rrset_protection(rr, change=False).wait_until_finished()
client.zones.delete_rrset(rr).action.wait_until_finished()
"#,
    )
    .await;
    let w = sim.dump_state();
    assert!(
        w["objects"]["primary_ips"]
            .as_object()
            .is_some_and(|m| m.len() == 1),
        "the protected primary IP is still there"
    );
}

/// Difference 3: actions lock what the API documents them to lock, for as long as they run:
/// a zone's and an rrset's changes sent back to back are all accepted (the zone queues
/// them), instant actions lock nothing, while a running server action still locks its
/// server.
#[tokio::test]
async fn back_to_back_zone_and_rrset_actions_are_accepted_while_server_actions_lock() {
    let sim = sim_with(Duration::from_millis(500)).await;
    run(
        &sim,
        r#"
zone = client.zones.create(name="example.org", mode="primary").zone
rr = client.zones.create_rrset(zone, name="api", type="A", records=[ZoneRecord(value="203.0.113.1")]).rrset
# No waiting between the calls.
actions = [
    client.zones.change_protection(zone, delete=True),
    client.zones.change_ttl(zone, 7200),
    client.zones.change_rrset_ttl(rr, 600),
    client.zones.add_rrset_records(rr, [ZoneRecord(value="203.0.113.2")]),
    client.zones.change_rrset_protection(rr, change=True),
]
assert all(a.status == "running" for a in actions), [a.status for a in actions]
assert [a.command for a in actions] == ["change_protection", "change_ttl", "change_rrset_ttl",
                                        "add_rrset_records", "change_rrset_protection"]
for a in actions:
    a.wait_until_finished()
    assert a.status == "success"
z = client.zones.get(zone.name)
rr = client.zones.get_rrset(zone, "api", "A")
assert (z.ttl, z.protection["delete"]) == (7200, True)
assert (rr.ttl, len(rr.records), rr.protection["change"]) == (600, 2, True)

s = server("db")
# Documented as finished in the request: protection changes back to back.
a = s.change_protection(delete=True, rebuild=True)
assert a.status == "success", a.status
s.change_protection(delete=False, rebuild=False)
s.enable_backup()
# A running power action locks the server.
s.power_off()
refused("locked", s.power_on)
"#,
    )
    .await;
    assert_eq!(
        sim.counters()
            .matching("POST /v1/zones/{id_or_name}/rrsets/{name}/{type}/actions/change_ttl"),
        1
    );
}

/// Difference 4: datacenters carry their real names.
#[tokio::test]
async fn datacenters_have_their_real_names() {
    let sim = sim().await;
    run(
        &sim,
        r#"
names = sorted(d.name for d in client.datacenters.get_all())
assert names == ["ash-dc1", "fsn1-dc14", "hel1-dc2", "hil-dc1", "nbg1-dc3", "sin-dc1"], names
dc = client.datacenters.get_by_name("fsn1-dc14")
assert (dc.id, dc.location.name) == (4, "fsn1")
dc_of = lambda s: client.request("GET", f"/servers/{s.id}")["server"]["datacenter"]["name"]
assert dc_of(server("x", location=Location(name="nbg1"))) == "nbg1-dc3"
assert dc_of(server("y")) == "fsn1-dc14"
locs = {l.name: l.network_zone for l in client.locations.get_all()}
assert locs["hil"] == "us-west" and locs["sin"] == "ap-southeast", locs
"#,
    )
    .await;
}

/// Difference 5: the server actions `enable_backup`/`disable_backup`, `rebuild`,
/// `enable_rescue`/`disable_rescue`, `change_protection`, `change_dns_ptr` (and the cheap
/// `reset_password`, `add_to_placement_group`/`remove_from_placement_group`) each answer an
/// action and change what `GET` shows.
#[tokio::test]
async fn server_actions_answer_actions_and_change_what_get_shows() {
    let sim = sim_with(Duration::from_millis(300)).await;
    run(
        &sim,
        r#"
key = client.ssh_keys.create(name="k", public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP/uTQP6OMXRTY1SYYAgEBBJ1ZQ7O7VN3W9J7c7QFX4l a@b")
s = server("box")
get = lambda: client.servers.get_by_id(s.id)

a = s.enable_backup(); a.wait_until_finished()
assert a.command == "enable_backup" and get().backup_window, get().backup_window
s.disable_backup().wait_until_finished()
assert get().backup_window is None

r = s.enable_rescue(type="linux64", ssh_keys=[key.id])
assert r.action.command == "enable_rescue" and r.root_password
r.action.wait_until_finished()
assert get().rescue_enabled is True
s.disable_rescue().wait_until_finished()
assert get().rescue_enabled is False

r = s.rebuild(Image(name="ubuntu-24.04"))
assert r.action.command == "rebuild_server"
refused("locked", s.rebuild, Image(name="debian-12"))
r.action.wait_until_finished()
assert get().image.name == "ubuntu-24.04"

s.change_protection(delete=True, rebuild=True).wait_until_finished()
assert get().protection == {"delete": True, "rebuild": True}
s.change_protection(delete=False, rebuild=False).wait_until_finished()

ip = get().public_net.ipv4.ip
a = s.change_dns_ptr(ip, "box.example.com"); a.wait_until_finished()
assert a.command == "change_dns_ptr"
assert get().public_net.ipv4.dns_ptr == "box.example.com"
assert client.primary_ips.get_by_id(get().public_net.primary_ipv4.id).dns_ptr[0]["dns_ptr"] == "box.example.com"
v6 = get().public_net.ipv6.ip.replace("::/64", "::1")
s.change_dns_ptr(v6, "v6.example.com").wait_until_finished()
assert get().public_net.ipv6.dns_ptr == [{"ip": v6, "dns_ptr": "v6.example.com"}]
s.change_dns_ptr(ip, None).wait_until_finished()
assert get().public_net.ipv4.dns_ptr == f"static.{ip}.clients.your-server.de"
refused("invalid_input", s.change_dns_ptr, "192.0.2.99", "x.example.com")

r = s.reset_password()
assert r.action.command == "reset_password" and r.root_password
r.action.wait_until_finished()

pg = client.placement_groups.create(name="pg", type="spread").placement_group
refused("server_not_stopped", s.add_to_placement_group, pg)
s.power_off().wait_until_finished()
s.add_to_placement_group(pg).wait_until_finished()
assert get().placement_group.name == "pg"
assert client.placement_groups.get_by_id(pg.id).servers == [s.id]
s.remove_from_placement_group().wait_until_finished()
assert get().placement_group is None
"#,
    )
    .await;
}

/// Difference 6: `attach_to_network` keeps `alias_ips`, `change_alias_ips` replaces them, and
/// alias IPs are taken in the network like any other address.
#[tokio::test]
async fn alias_ips_are_kept_changed_and_reserved_in_the_network() {
    let sim = sim().await;
    run(
        &sim,
        r#"
net = client.networks.create(name="n", ip_range="10.0.0.0/16",
    subnets=[NetworkSubnet(type="cloud", network_zone="eu-central", ip_range="10.0.1.0/24")])
a, b = server("a"), server("b")
a.attach_to_network(net, ip="10.0.1.5", alias_ips=["10.0.1.6", "10.0.1.7"]).wait_until_finished()
pn = client.servers.get_by_id(a.id).private_net[0]
assert (pn.ip, pn.alias_ips) == ("10.0.1.5", ["10.0.1.6", "10.0.1.7"]), pn.alias_ips
refused("ip_not_available", b.attach_to_network, net, ip="10.0.1.6")
act = a.change_alias_ips(net, ["10.0.1.6", "10.0.1.8"])
assert act.command == "change_alias_ips"
act.wait_until_finished()
assert client.servers.get_by_id(a.id).private_net[0].alias_ips == ["10.0.1.6", "10.0.1.8"]
refused("invalid_input", a.change_alias_ips, net, ["192.168.0.1"])
assert client.servers.get_by_id(a.id).private_net[0].alias_ips == ["10.0.1.6", "10.0.1.8"], "kept"
b.attach_to_network(net, ip="10.0.1.7").wait_until_finished()
other = client.networks.create(name="other", ip_range="10.1.0.0/16")
refused("server_not_attached_to_network", a.change_alias_ips, other, [])
"#,
    )
    .await;
}

/// Difference 7: an SSH key's fingerprint is the MD5 of its key blob, colon-separated hex,
/// as the client (and Ansible's `hcloud_ssh_key`, which compares it) computes it.
#[tokio::test]
async fn ssh_key_fingerprint_is_the_md5_of_the_key_blob() {
    let sim = sim().await;
    run(
        &sim,
        r#"
pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP/uTQP6OMXRTY1SYYAgEBBJ1ZQ7O7VN3W9J7c7QFX4l a@b"
blob = base64.b64decode(pub.split()[1])
want = ":".join(f"{b:02x}" for b in hashlib.md5(blob).digest())
k = client.ssh_keys.create(name="k", public_key=pub)
assert k.fingerprint == want == "02:51:45:b6:36:46:92:7e:5f:5b:e6:56:c8:99:10:5d", k.fingerprint
assert client.ssh_keys.get_by_fingerprint(want).id == k.id
refused("uniqueness_error", client.ssh_keys.create, name="again", public_key=pub.replace(" a@b", " other"))
refused("invalid_input", client.ssh_keys.create, name="bad", public_key="ssh-ed25519 not*base64")
"#,
    )
    .await;
}

/// Difference 8: primary IPs have `change_protection` (only without `auto_delete`), and an
/// assigned primary IP is not deleted: it must be unassigned first, which needs its server
/// powered off.
#[tokio::test]
async fn primary_ips_are_protected_and_deleted_only_when_unassigned() {
    let sim = sim().await;
    run(
        &sim,
        r#"
auto = client.primary_ips.create(type="ipv4", name="auto", location=Location(name="fsn1"), auto_delete=True).primary_ip
refused("invalid_input", auto.change_protection, delete=True)
ip = client.primary_ips.create(type="ipv4", name="pinned", location=Location(name="fsn1")).primary_ip
a = ip.change_protection(delete=True)
assert (a.command, a.status) == ("change_protection", "success")
assert client.primary_ips.get_by_id(ip.id).protection["delete"] is True
refused("protected", ip.delete)
ip.change_protection(delete=False).wait_until_finished()

s = server("web", public_net=ServerCreatePublicNetwork(ipv4=ip, enable_ipv6=False))
assert client.primary_ips.get_by_id(ip.id).assignee_id == s.id
refused("must_be_unassigned", ip.delete)
refused("server_not_stopped", ip.unassign)
s.power_off().wait_until_finished()
ip.unassign().wait_until_finished()
assert client.primary_ips.get_by_id(ip.id).assignee_id is None
assert client.servers.get_by_id(s.id).public_net.ipv4 is None
ip.assign(s.id, "server").wait_until_finished()
assert client.servers.get_by_id(s.id).public_net.ipv4.ip == ip.ip
ip.unassign().wait_until_finished()
assert ip.delete()
"#,
    )
    .await;
    let w = sim.dump_state();
    assert_eq!(
        w["objects"]["primary_ips"].as_object().map(|m| m
            .values()
            .filter_map(|p| p["name"].as_str())
            .collect::<Vec<_>>()),
        Some(vec!["auto"])
    );
}

/// Difference 9: zones have `change_primary_nameservers` (secondary zones) and
/// `import_zonefile` (primary zones; it replaces every rrset, and is refused while one is
/// change protected).
#[tokio::test]
async fn zones_change_primary_nameservers_and_import_zone_files() {
    let sim = sim().await;
    run(
        &sim,
        r#"
sec = client.zones.create(name="secondary.com", mode="secondary",
    primary_nameservers=[ZonePrimaryNameserver(address="198.51.100.1")]).zone
a = client.zones.change_primary_nameservers(sec, [ZonePrimaryNameserver(address="203.0.113.1", port=5353)])
assert a.command == "change_primary_nameservers"
a.wait_until_finished()
ns = client.zones.get(sec.name).primary_nameservers
assert [(n.address, n.port) for n in ns] == [("203.0.113.1", 5353)], ns
refused("incorrect_zone_mode", client.zones.import_zonefile, sec, "")

zone = client.zones.create(name="example.net", mode="primary").zone
refused("incorrect_zone_mode", client.zones.change_primary_nameservers, zone, [ZonePrimaryNameserver(address="203.0.113.1")])
client.zones.create_rrset(zone, name="old", type="A", records=[ZoneRecord(value="203.0.113.9")]).action.wait_until_finished()
zonefile = """$ORIGIN example.net.
$TTL 3600
@\tIN\tSOA\thydrogen.ns.hetzner.com. dns.hetzner.com. (
\t\t2024010100 86400 10800 3600000 3600 )
@\tIN\t10800\tNS\thydrogen.ns.hetzner.com. ; first
@\tIN\t10800\tNS\toxygen.ns.hetzner.com.
www\t300\tIN\tA\t203.0.113.5 ; web
\tIN\tA\t203.0.113.6
mail.example.net.\tIN\tMX\t10 mx.example.net.
"""
a = client.zones.import_zonefile(zone, zonefile)
assert a.command == "import_zonefile"
a.wait_until_finished()
sets = {(r.name, r.type): r for r in client.zones.get_rrset_all(zone)}
assert sorted(sets) == [("@", "NS"), ("@", "SOA"), ("mail", "MX"), ("www", "A")], sorted(sets)
www = sets[("www", "A")]
assert (www.ttl, [(r.value, r.comment) for r in www.records]) == (300, [("203.0.113.5", "web"), ("203.0.113.6", "")])
assert "www\tIN\t300\tA\t203.0.113.5 ; web" in client.zones.export_zonefile(zone).zonefile
refused("invalid_input", client.zones.import_zonefile, zone, "www IN A 999.1.1.1\n")
client.zones.change_rrset_protection(www, change=True).wait_until_finished()
refused("protected", client.zones.import_zonefile, zone, zonefile)
"#,
    )
    .await;
}
