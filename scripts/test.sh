#!/usr/bin/env bash
# Runs Wharf's whole test suite on a fresh machine: installs what the tests need (Debian
# packages, the Kubernetes test binaries, a Python venv with moto's AWS-compatible server),
# then runs every unit, integration and end-to-end test against real servers on 127.0.0.1.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -p wharf-crds   extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
log() { printf '[test] %s\n' "$*" >&2; }

# 1. kube-apiserver + kube-controller-manager (built once, cached under ~/.cache/wharf).
scripts/kube-test-cluster.sh build

# 2. moto's server in a project-local venv.
if ! .venv/bin/moto_server --help >/dev/null 2>&1 \
  || ! .venv/bin/pip show moto 2>/dev/null | grep -qx "Version: $MOTO_VERSION"; then
  log "creating .venv with moto[server]==$MOTO_VERSION"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
export WHARF_MOTO_SERVER="$PWD/.venv/bin/moto_server"

# 3. The tests.
if [ $# -eq 0 ]; then set -- --workspace; fi
log "cargo test --all-targets $*"
cargo test --all-targets "$@"
