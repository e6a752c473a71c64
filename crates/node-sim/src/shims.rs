//! The programs a simulated host provides on its `PATH` (`/usr/local/sbin` in its mount
//! namespace): `systemctl`, `kubeadm`, `kubectl` and `sudo`, as small shell scripts acting
//! on that host's files and state directory. They model causes — `systemctl restart kubelet`
//! appends to the host's unit log — and fail like a real host on anything they do not model.

/// `systemctl` for the units a kubeadm node has (kubelet, containerd).
const SYSTEMCTL: &str = r#"#!/bin/sh
# cairn node simulator: systemctl
state=@STATE@
known() { case "${1%.service}" in kubelet|containerd) return 0;; esac; return 1; }
cmd=$1; [ $# -gt 0 ] && shift
case "$cmd" in
  start|stop|restart|reload|enable|disable)
    [ $# -gt 0 ] || { echo "Too few arguments." >&2; exit 1; }
    for u do known "$u" || { echo "Failed to $cmd ${u%.service}.service: Unit ${u%.service}.service not found." >&2; exit 5; }; done
    for u do
      u=${u%.service}
      echo "$cmd $u" >> "$state/systemctl.log"
      case "$cmd" in start|restart|reload) echo active > "$state/units/$u";; stop) echo inactive > "$state/units/$u";; esac
    done ;;
  is-active)
    rc=0
    for u do
      s=$(cat "$state/units/${u%.service}" 2>/dev/null || echo inactive); echo "$s"
      [ "$s" = active ] || rc=3
    done
    exit $rc ;;
  *) echo "Unknown command verb $cmd." >&2; exit 1 ;;
esac
"#;

/// `kubeadm`: only `version` in this simulator version.
const KUBEADM: &str = r#"#!/bin/sh
# cairn node simulator: kubeadm
case "$1" in
  version)
    if [ "$2" = "-o" ] && [ "$3" = short ]; then echo v1.34.1; else echo 'kubeadm version: &version.Info{Major:"1", Minor:"34", GitVersion:"v1.34.1"}'; fi ;;
  *) echo "error: unknown command \"$1\" for \"kubeadm\"" >&2; exit 1 ;;
esac
"#;

/// `kubectl`: the client version; everything else finds no cluster, as on a node without
/// an admin kubeconfig.
const KUBECTL: &str = r#"#!/bin/sh
# cairn node simulator: kubectl
if [ "$1" = version ] && [ "$2" = --client ]; then echo "Client Version: v1.34.1"; exit 0; fi
echo "The connection to the server localhost:8080 was refused - did you specify the right host or port?" >&2
exit 1
"#;

/// `sudo`: passwordless, unless the host's state says a password is required; `-n` then
/// fails at once instead of prompting, as the real one does.
const SUDO: &str = r#"#!/bin/sh
# cairn node simulator: sudo
state=@STATE@
n=0
while [ $# -gt 0 ]; do
  case "$1" in -n) n=1; shift;; --) shift; break;; -*) echo "sudo: option $1 is not simulated" >&2; exit 1;; *) break;; esac
done
if [ -e "$state/sudo-needs-password" ]; then
  if [ "$n" = 1 ]; then echo "sudo: a password is required" >&2; else echo "sudo: a terminal is required to read the password" >&2; fi
  exit 1
fi
exec "$@"
"#;

/// The shims as `(name, script)` with the host's state directory filled in.
pub(crate) fn all(state: &str) -> Vec<(&'static str, String)> {
    [
        ("systemctl", SYSTEMCTL),
        ("kubeadm", KUBEADM),
        ("kubectl", KUBECTL),
        ("sudo", SUDO),
    ]
    .into_iter()
    .map(|(n, s)| (n, s.replace("@STATE@", &shell_quote(state))))
    .collect()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
