"""Drives the official `hcloud` Python library against the cairn Hetzner simulator.

Unmodified library; only `api_endpoint` points at the simulator. Every step asserts what the
real API would answer. Run by `crates/hetzner/tests/official_client.rs`.
"""
import os
import sys

from hcloud import Client, APIException
from hcloud.firewalls import FirewallResource, FirewallResourceLabelSelector, FirewallRule
from hcloud.images import Image
from hcloud.load_balancer_types import LoadBalancerType
from hcloud.load_balancers import (
    LoadBalancerAlgorithm,
    LoadBalancerHealthCheck,
    LoadBalancerService,
    LoadBalancerTarget,
)
from hcloud.locations import Location
from hcloud.networks import NetworkSubnet
from hcloud.server_types import ServerType
from hcloud.zones import ZoneRecord

client = Client(token=os.environ["HCLOUD_TOKEN"], api_endpoint=os.environ["HCLOUD_ENDPOINT"])


def step(msg):
    print(f"-- {msg}", flush=True)


def expect_api_error(code, fn):
    try:
        fn()
    except APIException as e:
        assert e.code == code, f"expected {code}, got {e.code}: {e.message}"
        return e
    raise AssertionError(f"expected APIException {code}")


step("catalog")
assert client.server_types.get_by_name("cax11").architecture == "arm"
assert client.locations.get_by_name("fsn1").network_zone == "eu-central"
assert client.load_balancer_types.get_by_name("lb11") is not None
assert client.images.get_by_name_and_architecture("ubuntu-24.04", "arm") is not None

step("bad token is refused")
bad = Client(token="x" * 64, api_endpoint=os.environ["HCLOUD_ENDPOINT"])
expect_api_error("unauthorized", lambda: bad.servers.get_all())

step("network with subnet")
net = client.networks.create(
    name="k3s-net",
    ip_range="10.0.0.0/16",
    subnets=[NetworkSubnet(type="cloud", network_zone="eu-central", ip_range="10.0.1.0/24")],
    labels={"env": "test"},
)
assert net.ip_range == "10.0.0.0/16" and net.subnets[0].gateway == "10.0.0.1", net.subnets
client.networks.add_subnet(
    net, NetworkSubnet(type="cloud", network_zone="eu-central", ip_range="10.0.2.0/24")
).wait_until_finished()
expect_api_error(
    "invalid_input",
    lambda: client.networks.add_subnet(
        net, NetworkSubnet(type="cloud", network_zone="eu-central", ip_range="10.0.2.128/25")
    ),
)
expect_api_error("uniqueness_error", lambda: client.networks.create(name="k3s-net", ip_range="10.1.0.0/16"))
assert len(client.networks.get_by_id(net.id).subnets) == 2

step("servers: create, wait, list paged")
created = []
for i in range(53):
    r = client.servers.create(
        name=f"node-{i:02d}",
        server_type=ServerType(name="cax11"),
        image=Image(name="ubuntu-24.04"),
        location=Location(name="fsn1"),
        networks=[net] if i < 2 else None,
        labels={"cairn.dev/stack": "py", "idx": str(i), "role": "web" if i % 2 else "db"},
    )
    created.append(r)
created[0].action.wait_until_finished()
for a in created[0].next_actions:
    a.wait_until_finished()
s0 = client.servers.get_by_id(created[0].server.id)
assert s0.status == "running", s0.status
assert s0.private_net[0].ip.startswith("10.0.1."), s0.private_net
assert s0.public_net.ipv4.ip.split(".")[0] in ("203", "198", "192"), s0.public_net.ipv4.ip
page = client.servers.get_list(page=1, per_page=50)
assert len(page.servers) == 50 and page.meta.pagination.next_page == 2 and page.meta.pagination.total_entries == 53
all_servers = client.servers.get_all(label_selector="cairn.dev/stack=py")
assert len(all_servers) == 53, len(all_servers)
assert len(client.servers.get_all(label_selector="role=web,idx in (1,3,4)")) == 2
assert len(client.servers.get_all(label_selector="!role")) == 0
assert client.servers.get_by_name("node-07").labels["idx"] == "7"
srt = client.networks.get_all()
assert [n.name for n in srt] == ["k3s-net"]
expect_api_error(
    "uniqueness_error",
    lambda: client.servers.create(name="node-00", server_type=ServerType(name="cax11"), image=Image(name="ubuntu-24.04")),
)
e = expect_api_error(
    "invalid_input",
    lambda: client.servers.create(name="bad", server_type=ServerType(name="nope"), image=Image(name="ubuntu-24.04")),
)
assert any(f["name"] == "server_type" for f in e.details["fields"]), e.details

step("server update, power, locked")
s1 = client.servers.get_by_name("node-01")
s1 = client.servers.update(s1, name="node-01b", labels={"role": "web", "cairn.dev/stack": "py"})
assert s1.name == "node-01b"
client.servers.power_off(s1).wait_until_finished()
assert client.servers.get_by_id(s1.id).status == "off"
act = client.servers.power_on(s1)
expect_api_error("locked", lambda: client.servers.power_off(s1))
act.wait_until_finished()

step("load balancer with service and targets")
lbr = client.load_balancers.create(
    name="k3s-lb",
    load_balancer_type=LoadBalancerType(name="lb11"),
    location=Location(name="fsn1"),
    algorithm=LoadBalancerAlgorithm(type="round_robin"),
    network=net,
    services=[
        LoadBalancerService(
            protocol="tcp",
            listen_port=80,
            destination_port=80,
            proxyprotocol=False,
            health_check=LoadBalancerHealthCheck(protocol="tcp", port=80, interval=15, timeout=10, retries=3),
        )
    ],
)
lbr.action.wait_until_finished()
lb = client.load_balancers.get_by_id(lbr.load_balancer.id)
assert lb.public_net.ipv4.ip and lb.private_net[0].ip.startswith("10.0."), lb.private_net
w1 = client.servers.get_by_name("node-00")
client.load_balancers.add_target(lb, LoadBalancerTarget(type="server", server=w1, use_private_ip=True)).wait_until_finished()
client.load_balancers.add_target(lb, LoadBalancerTarget(type="server", server=s1, use_private_ip=True)).wait_until_finished()
lone = client.servers.get_by_name("node-10")
expect_api_error(
    "server_not_attached_to_network",
    lambda: client.load_balancers.add_target(lb, LoadBalancerTarget(type="server", server=lone, use_private_ip=True)),
)
client.load_balancers.add_service(
    lb,
    LoadBalancerService(
        protocol="tcp", listen_port=443, destination_port=443, proxyprotocol=False,
        health_check=LoadBalancerHealthCheck(protocol="tcp", port=443, interval=15, timeout=10, retries=3),
    ),
).wait_until_finished()
client.load_balancers.update_service(
    lb, LoadBalancerService(listen_port=443, destination_port=8443)
).wait_until_finished()
lb = client.load_balancers.get_by_id(lb.id)
assert sorted(s.listen_port for s in lb.services) == [80, 443]
assert [s.destination_port for s in lb.services if s.listen_port == 443] == [8443]
assert len(lb.targets) == 2
for t in lb.targets:
    assert all(h.status == "healthy" for h in t.health_status), t.health_status
client.servers.power_off(w1).wait_until_finished()
lb = client.load_balancers.get_by_id(lb.id)
status = {t.server.id: [h.status for h in t.health_status] for t in lb.targets}
assert status[w1.id] == ["unhealthy", "unhealthy"], status
client.load_balancers.remove_target(lb, LoadBalancerTarget(type="server", server=s1)).wait_until_finished()
client.load_balancers.delete_service(lb, LoadBalancerService(listen_port=443)).wait_until_finished()
client.load_balancers.change_algorithm(lb, LoadBalancerAlgorithm(type="least_connections")).wait_until_finished()
lb = client.load_balancers.update(lb, labels={"cairn.dev/stack": "py"})
lb = client.load_balancers.get_by_id(lb.id)
assert len(lb.targets) == 1 and len(lb.services) == 1 and lb.algorithm.type == "least_connections"

step("firewall")
fwr = client.firewalls.create(
    name="k3s-fw",
    rules=[FirewallRule(direction="in", protocol="tcp", port="6443", source_ips=["10.0.0.0/16", "198.51.100.7/32"])],
    resources=[FirewallResource(type="server", server=w1)],
)
for a in fwr.actions:
    a.wait_until_finished()
e = expect_api_error(
    "invalid_input",
    lambda: client.firewalls.create(
        name="bad-fw", rules=[FirewallRule(direction="in", protocol="tcp", port="70000", source_ips=["0.0.0.0/0"])]
    ),
)
assert e.details["fields"][0]["name"] == "rules[0].port", e.details
fw = fwr.firewall
for a in client.firewalls.set_rules(
    fw, [FirewallRule(direction="in", protocol="tcp", port="80-443", source_ips=["0.0.0.0/0", "::/0"])]
):
    a.wait_until_finished()
for a in client.firewalls.apply_to_resources(fw, [FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector(selector="role=db"))]):
    a.wait_until_finished()
fw = client.firewalls.get_by_id(fw.id)
assert fw.rules[0].port == "80-443"
assert len(fw.applied_to) == 2
assert client.servers.get_by_id(w1.id).public_net.firewalls[0].firewall.id == fw.id
for a in client.firewalls.remove_from_resources(fw, [FirewallResource(type="server", server=w1)]):
    a.wait_until_finished()
client.firewalls.update(fw, name="k3s-fw2")

step("zone and rrset")
zr = client.zones.create(name="docfast.dev", mode="primary", ttl=3600, labels={"cairn.dev/stack": "py"})
zr.action.wait_until_finished()
zone = client.zones.get("docfast.dev")
rr = client.zones.create_rrset(
    zone, name="@", type="A", ttl=300, records=[ZoneRecord(value=lb.public_net.ipv4.ip, comment="lb")]
)
rr.action.wait_until_finished()
e = expect_api_error(
    "invalid_input",
    lambda: client.zones.create_rrset(zone, name="staging", type="A", records=[ZoneRecord(value="300.1.2.3")]),
)
rrset = client.zones.get_rrset(zone, "@", "A")
assert rrset.records[0].value == lb.public_net.ipv4.ip
client.zones.add_rrset_records(rrset, records=[ZoneRecord(value="203.0.113.250")]).wait_until_finished()
client.zones.change_rrset_ttl(rrset, 600).wait_until_finished()
rrset = client.zones.get_rrset(zone, "@", "A")
assert len(rrset.records) == 2 and rrset.ttl == 600
client.zones.set_rrset_records(rrset, records=[ZoneRecord(value="203.0.113.251")]).wait_until_finished()
client.zones.remove_rrset_records(client.zones.get_rrset(zone, "@", "A"), records=[ZoneRecord(value="203.0.113.251")]).wait_until_finished()
expect_api_error("not_found", lambda: client.zones.get_rrset(zone, "@", "A"))
client.zones.create_rrset(zone, name="www", type="CNAME", records=[ZoneRecord(value="docfast.dev.")]).action.wait_until_finished()
names = sorted(f"{r.name}/{r.type}" for r in client.zones.get_rrset_all(zone))
assert names == ["@/NS", "@/SOA", "www/CNAME"], names
client.zones.update(zone, labels={"cairn.dev/stack": "py", "x": "y"})
client.zones.change_ttl(zone, 7200).wait_until_finished()
client.zones.delete_rrset(client.zones.get_rrset(zone, "www", "CNAME")).action.wait_until_finished()
client.zones.delete(zone).action.wait_until_finished()
assert client.zones.get_all() == []

step("delete everything")
client.load_balancers.delete(lb)
for a in client.firewalls.remove_from_resources(fw, [FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector(selector="role=db"))]):
    a.wait_until_finished()
client.firewalls.delete(fw)
actions = [client.servers.delete(s) for s in client.servers.get_all()]
for a in actions:
    a.wait_until_finished()
client.networks.delete(net)
assert client.servers.get_all() == [] and client.networks.get_all() == [] and client.load_balancers.get_all() == []
assert client.primary_ips.get_all() == [], "auto-delete primary IPs go with their server"
print("OK", flush=True)
