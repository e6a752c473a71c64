"""Drives the cairn Proxmox VE simulator with the unmodified official `proxmoxer` client.

Environment: PVE_HOST (127.0.0.1), PVE_PORT, PVE_TOKEN (user@realm!id=secret), PVE_PASSWORD,
PVE_VERIFY ("0" = verify_ssl off; "1" = verify against REQUESTS_CA_BUNDLE).
Exits non-zero with a message on the first behaviour that differs from Proxmox VE.
"""

import os
import sys
import urllib.parse

from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks

host = os.environ["PVE_HOST"]
port = int(os.environ["PVE_PORT"])
token = os.environ["PVE_TOKEN"]
verify = os.environ.get("PVE_VERIFY", "0") == "1"
user, rest = token.split("!", 1)
token_name, token_value = rest.split("=", 1)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def wait(prox, upid):
    status = Tasks.blocking_status(prox, upid, timeout=30, polling_interval=0.05)
    check(status is not None, f"task {upid} did not finish")
    check(status["exitstatus"] == "OK", f"task {upid} failed: {status}")
    return status


prox = ProxmoxAPI(
    host, port=port, user=user, token_name=token_name, token_value=token_value,
    verify_ssl=verify, timeout=30,
)

version = prox.version.get()
check(version["version"].startswith("9."), f"version {version}")

vms = prox.cluster.resources.get(type="vm")
templates = [v for v in vms if v.get("template") == 1 and v.get("name") == "ubuntu-2404-cloudinit"]
check(len(templates) == 1, f"template in cluster resources: {templates}")
template = templates[0]
node = template["node"]

newid = int(prox.cluster.nextid.get())
check(newid >= 100 and all(v["vmid"] != newid for v in vms), f"nextid {newid}")

upid = prox.nodes(node).qemu(template["vmid"])("clone").post(newid=newid, name="py-clone", full=0)
check(upid.startswith(f"UPID:{node}:"), f"clone returned a UPID: {upid}")
decoded = Tasks.decode_upid(upid)
check(decoded["type"] == "qmclone" and decoded["id"] == str(template["vmid"]), f"UPID fields {decoded}")
locked = prox.nodes(node).qemu(newid).config.get()
check(locked.get("lock") == "clone", f"lock: clone during the clone task: {locked.get('lock')}")
wait(prox, upid)

keys = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample+key/x= ops@homelab"
prox.nodes(node).qemu(newid).config.put(
    ciuser="ubuntu",
    sshkeys=urllib.parse.quote(keys, safe=""),
    ipconfig0="ip=10.0.20.150/24,gw=10.0.20.1",
    nameserver="10.0.20.1",
    searchdomain="homelab.lan",
    tags="Py;k8s,K8S",
    memory=4096,
    cores=2,
    onboot=1,
)
cfg = prox.nodes(node).qemu(newid).config.get()
check(cfg["tags"] == "k8s;py", f"tags normalised: {cfg['tags']}")
check(urllib.parse.unquote(cfg["sshkeys"]) == keys, f"sshkeys round trip: {cfg['sshkeys']}")
check(cfg["cores"] == 2 and str(cfg["memory"]) == "4096", f"cores/memory: {cfg}")
check(cfg["ipconfig0"] == "ip=10.0.20.150/24,gw=10.0.20.1", f"ipconfig0: {cfg['ipconfig0']}")
check(cfg["net0"].startswith("virtio=BC:24:11:"), f"new MAC on net0: {cfg['net0']}")
check(len(cfg["digest"]) == 40, "digest")

try:
    prox.nodes(node).qemu(newid).config.put(cores=4, digest="0" * 40)
    check(False, "a stale digest must be refused")
except ResourceException as e:
    check("checksum mismatch" in str(e), f"stale digest error: {e}")

try:
    prox.nodes(node).qemu(newid).config.put(bogus_option=1)
    check(False, "an unknown option must be refused")
except ResourceException as e:
    check(e.status_code == 400 and e.errors and "bogus_option" in e.errors, f"400 with errors: {e} {e.errors}")

upid = prox.nodes(node).qemu(newid).resize.put(disk="scsi0", size="+10G")
wait(prox, upid)
cfg = prox.nodes(node).qemu(newid).config.get()
check("size=13824M" in cfg["scsi0"], f"resized scsi0: {cfg['scsi0']}")

upid = prox.nodes(node).qemu(newid).status.start.post()
wait(prox, upid)
current = prox.nodes(node).qemu(newid).status.current.get()
check(current["status"] == "running", f"running after start: {current}")

vms = prox.cluster.resources.get(type="vm")
mine = [v for v in vms if v["vmid"] == newid]
check(len(mine) == 1 and mine[0]["status"] == "running" and mine[0]["name"] == "py-clone", f"resource {mine}")
check(mine[0]["maxmem"] == 4096 * 1024 * 1024, f"maxmem bytes {mine[0]}")
log = prox.nodes(node).tasks(upid).log.get()
check(log and log[-1]["t"] == "TASK OK", f"task log {log}")

try:
    prox.nodes(node).qemu(99999).config.get()
    check(False, "missing VM must fail")
except ResourceException as e:
    check(e.status_code == 500 and "does not exist" in str(e), f"missing VM error: {e}")

ticket_api = ProxmoxAPI(host, port=port, user="root@pam", password=os.environ["PVE_PASSWORD"],
                        verify_ssl=verify, timeout=30)
ticket_api.nodes(node).qemu(newid).config.put(description="set with ticket auth")
check(prox.nodes(node).qemu(newid).config.get()["description"] == "set with ticket auth", "ticket write")

print(f"PROXMOXER OK verify={verify} vmid={newid}")
