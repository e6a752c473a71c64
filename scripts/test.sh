#!/usr/bin/env bash
# Runs the whole test suite. First installs what the tests need if it is missing (Debian's
# haproxy, iproute2, util-linux, openssh-client, openssh-server, curl, postgresql and pgbouncer;
# a Python venv with the official API clients), builds everything, then runs the tests
# inside a fresh network namespace that has only loopback, so a mapping bug fails a test
# instead of sending a packet anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
# The simulated hosts' kubeadm and systemctl reach the node simulator with curl --unix-socket.
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The team-backend tests start their own throwaway cluster (initdb into a temp dir, as an
# unprivileged user, on a loopback port) and PgBouncer in front of it: no system service.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! .venv/bin/python -c 'import hcloud, proxmoxer, requests' >/dev/null 2>&1; then
  echo "==> creating .venv with the official Python clients"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
fi
export CAIRN_TEST_PYTHON="$PWD/.venv/bin/python"

runner=(cargo nextest run)
cargo nextest --version >/dev/null 2>&1 || runner=(cargo test)

echo "==> building tests (network allowed for crates.io)"
cargo build --workspace --all-features --all-targets --quiet
if [ "${runner[*]}" = "cargo nextest run" ]; then
  cargo nextest run --workspace --all-features --no-run --cargo-quiet
fi

echo "==> running tests in a loopback-only network namespace"
export CARGO_NET_OFFLINE=true
unshare --net -- bash -c '
  set -euo pipefail
  ip link set lo up
  if ip -o addr show | grep -v " lo " | grep -q inet; then
    echo "network namespace is not loopback-only" >&2; exit 1
  fi
  cargo test --workspace --all-features --doc --quiet
  exec "$@"
' bash "${runner[@]}" --workspace --all-features "$@"
