//! The programs a simulated host provides on its `PATH` (`/usr/local/sbin` in its mount
//! namespace): `systemctl`, `kubeadm`, `kubectl`, `journalctl`, `k3s-install.sh` and `sudo`,
//! plus the `k3s` binary the install script writes to `/usr/local/bin`. `kubeadm` and `systemctl` forward to the simulator, which acts on the host's files and on
//! the cluster simulator; `kubectl` and `sudo` are small shell scripts. They fail like a real
//! host on anything they do not model.

/// `systemctl` and `kubeadm`: forward their arguments to the simulator's control socket
/// (with this host's name and the shim's pid, through which the simulator reads the files
/// the command names), then print what it answers and exit with its code.
const FORWARD: &str = r#"#!/bin/sh
# cairn node simulator: @PROG@ (answered by the simulator)
t=$(mktemp -d) || exit 1
@PRE@code=$({ printf '%s\0' "$#"; [ $# -gt 0 ] && printf '%s\0' "$@"; } | curl -sS --fail --unix-socket @SOCK@ -H "X-Pid: $$" -H "X-Out: $t" --data-binary @- "http://sim/exec/@HOST@/@PROG@" 2>"$t/curl")
if [ $? -ne 0 ]; then
  echo "@PROG@: the node simulator does not answer: $(cat "$t/curl")" >&2; rm -rf "$t"; exit 1
fi
cat "$t/out"; cat "$t/err" >&2; rm -rf "$t"
exit "$code"
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

/// The shims as `(name, script)` for host `host`, with its state directory and the
/// simulator's control socket filled in.
pub(crate) fn all(state: &str, host: &str, socket: &str) -> Vec<(&'static str, String)> {
    let fwd = |prog: &str| forward(prog, host, socket, "");
    vec![
        ("systemctl", fwd("systemctl")),
        ("kubeadm", fwd("kubeadm")),
        ("journalctl", fwd("journalctl")),
        // k3s's install script, as cloud-init would have put it on the host: the
        // simulator reads the variables it takes (INSTALL_K3S_*, K3S_*) from a 0600 file
        // in the shim's private directory, never from its arguments.
        (
            "k3s-install.sh",
            forward(
                "k3s-install",
                host,
                socket,
                "(umask 077; env | grep -E '^(INSTALL_K3S_|K3S_)' > \"$t/env\")\n",
            ),
        ),
        ("kubectl", KUBECTL.to_string()),
        ("sudo", SUDO.replace("@STATE@", &shell_quote(state))),
    ]
}

/// A shim forwarding `prog` of `host` to the control socket (`pre` runs first).
pub(crate) fn forward(prog: &str, host: &str, socket: &str, pre: &str) -> String {
    FORWARD
        .replace("@PRE@", pre)
        .replace("@PROG@", prog)
        .replace("@HOST@", host)
        .replace("@SOCK@", &shell_quote(socket))
}

/// The `k3s` binary the install script puts at `/usr/local/bin/k3s`: it forwards to the
/// simulator, which reads the version from the `K3S_VERSION=` line of this very file (so the
/// version is the one installed, not a setting of the simulator).
pub(crate) fn k3s_binary(version: &str, host: &str, socket: &str) -> String {
    let body = forward("k3s", host, socket, "");
    let (first, rest) = body.split_once('\n').unwrap_or((&body, ""));
    format!("{first}\nK3S_VERSION={}\n{rest}", shell_quote(version))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
