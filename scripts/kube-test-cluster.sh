#!/usr/bin/env bash
# A real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager) on 127.0.0.1
# for Wharf's end-to-end tests. No container runtime is needed: the binaries are built once from
# Debian's `kubernetes` source package (v1.20.2) and cached outside the repository.
#
#   scripts/kube-test-cluster.sh build                      build (or reuse) the cached binaries
#   scripts/kube-test-cluster.sh start DIR [--owner-pid P]  start a cluster whose state lives in DIR;
#                                                           with --owner-pid it stops when P exits
#   scripts/kube-test-cluster.sh env DIR                    print `export KUBECONFIG=...`
#   scripts/kube-test-cluster.sh stop DIR                   stop the cluster started in DIR
#   scripts/kube-test-cluster.sh bin-dir                    print where the binaries are cached
set -euo pipefail

K8S_VERSION_DIR="kubernetes-1.20.2"
CACHE_ROOT="${WHARF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wharf}"
BIN_DIR="${WHARF_KUBE_BIN_DIR:-$CACHE_ROOT/$K8S_VERSION_DIR/bin}"
GO_BIN=/usr/lib/go-1.19/bin
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

log() { printf '[kube-test-cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root (or sudo) to run: $*"; fi
}

KUBE_BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubelet"

have_binaries() {
  local b
  for b in $KUBE_BINARIES pause; do [ -x "$BIN_DIR/$b" ] || return 1; done
}

# The mirror the machine's apt already uses for bookworm (deb822 sources or a one-line list), so
# the project never names a package host of its own.
apt_mirror() {
  local uri
  uri=$(awk '/^Types:/ {deb = ($0 ~ /(^|[ \t])deb([ \t]|$)/)} deb && /^URIs:/ {print $2}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- '-security' | head -n 1 || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" && $3 ~ /^bookworm/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  [ -n "$uri" ] || die "no bookworm mirror in the apt configuration (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list)"
  echo "$uri"
}

install_packages() {
  local sources=/etc/apt/sources.list.d/wharf-deb-src.sources
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    local mirror
    mirror=$(apt_mirror)
    log "adding a deb-src entry for bookworm ($mirror)"
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" | as_root tee "$sources" >/dev/null
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    dpkg-dev golang-1.19-go golang-github-modern-go-reflect2-dev etcd-server make jq rsync openssl >/dev/null
}

cmd_build() {
  if have_binaries; then
    log "binaries present in $BIN_DIR (delete them to rebuild)"
    return 0
  fi
  install_packages
  local work="$CACHE_ROOT/build"
  rm -rf "$work" && mkdir -p "$work"
  log "fetching Debian's kubernetes source package"
  (cd "$work" && apt-get source -qq kubernetes >/dev/null)
  local tree
  tree=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
  [ -n "$tree" ] || die "apt-get source kubernetes produced no source tree"
  # The vendored reflect2 v1.0.1 crashes under Go >= 1.18 on the first custom-object create;
  # Debian's v1.0.2 has the same API and works.
  local vendored="$tree/vendor/github.com/modern-go/reflect2"
  find "$vendored" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) -delete
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$vendored"/
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$vendored"/ 2>/dev/null || true
  local what="" b
  for b in $KUBE_BINARIES; do what="$what cmd/$b"; done
  log "building$what (about 9 minutes on 2 cores)"
  (cd "$tree" && PATH="$GO_BIN:$PATH" CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor \
    make WHAT="${what# }" >"$work/build.log" 2>&1) \
    || { tail -n 40 "$work/build.log" >&2; die "build failed (log: $work/build.log)"; }
  mkdir -p "$BIN_DIR"
  for b in $KUBE_BINARIES; do cp "$tree/_output/local/go/bin/$b" "$BIN_DIR/"; done
  # The pod sandbox ("pause") binary comes from the same tree, so no image registry is needed.
  gcc -static -O2 -DVERSION=3.2 -o "$BIN_DIR/pause" "$tree/build/pause/linux/pause.c"
  rm -rf "$work"
  log "binaries cached in $BIN_DIR"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

make_certs() {
  local pki="$1"
  mkdir -p "$pki" && cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=wharf-test-ca" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=wharf-test-front-proxy-ca" \
    -keyout front-proxy-ca.key -out front-proxy-ca.crt 2>/dev/null
  sign() { # name subject ca [extfile]
    openssl req -new -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 2 \
      ${4:+-extfile "$4"} -out "$1.crt" 2>/dev/null
  }
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >serving.ext
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  sign apiserver "/CN=kube-apiserver" ca serving.ext
  sign admin "/O=system:masters/CN=wharf-test-admin" ca client.ext
  sign front-proxy-client "/CN=front-proxy-client" front-proxy-ca client.ext
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

write_kubeconfig() { # file port pki
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: wharf-test
  cluster:
    server: https://127.0.0.1:$2
    certificate-authority: $3/ca.crt
users:
- name: admin
  user:
    client-certificate: $3/admin.crt
    client-key: $3/admin.key
contexts:
- name: wharf-test
  context: {cluster: wharf-test, user: admin, namespace: default}
current-context: wharf-test
EOF
}

wait_ready() { # kubeconfig seconds
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    if kubectl --kubeconfig "$1" get --raw /readyz >/dev/null 2>&1 \
      && kubectl --kubeconfig "$1" get serviceaccount default -n default >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.3
  done
  return 1
}

cmd_start() {
  local dir="" owner=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --owner-pid) owner="$2"; shift 2 ;;
      *) dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || die "usage: start DIR [--owner-pid PID]"
  have_binaries || die "no binaries in $BIN_DIR: run '$SELF build' first"
  command -v etcd >/dev/null || die "etcd not installed: run '$SELF build' (it installs etcd-server)"
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
  local pki="$dir/pki"
  make_certs "$pki"
  local etcd_client etcd_peer api_port cm_port
  etcd_client=$(free_port); etcd_peer=$(free_port); api_port=$(free_port); cm_port=$(free_port)
  echo 'wharf-test-token,wharf-test-admin,1,"system:masters"' >"$pki/tokens.csv"

  etcd --name wharf-test --data-dir "$dir/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "wharf-test=http://127.0.0.1:$etcd_peer" >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"

  "$BIN_DIR/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_client" \
    --bind-address=127.0.0.1 --secure-port="$api_port" --insecure-port=0 \
    --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=RBAC --anonymous-auth=false \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    >"$dir/apiserver.log" 2>&1 &
  echo $! >"$dir/apiserver.pid"

  write_kubeconfig "$dir/kubeconfig" "$api_port" "$pki"
  "$BIN_DIR/kube-controller-manager" --kubeconfig "$dir/kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port="$cm_port" --port=0 \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=false \
    --controllers='*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,-csrsigning,-csrapproving,-csrcleaner' \
    >"$dir/controller-manager.log" 2>&1 &
  echo $! >"$dir/controller-manager.pid"

  if [ -n "$owner" ]; then
    # Tear the cluster down when the test process that owns it goes away, however it ends.
    nohup bash -c "while kill -0 $owner 2>/dev/null; do sleep 1; done; '$SELF' stop '$dir'" \
      >/dev/null 2>&1 &
    echo $! >"$dir/watchdog.pid"
  fi

  if ! wait_ready "$dir/kubeconfig" 90; then
    tail -n 20 "$dir/apiserver.log" >&2 || true
    cmd_stop "$dir"
    die "API server did not become ready (logs in $dir)"
  fi
  log "ready: https://127.0.0.1:$api_port (KUBECONFIG=$dir/kubeconfig)"
  echo "export KUBECONFIG=$dir/kubeconfig"
}

cmd_stop() {
  local dir="$1" pidfile
  # An explicit stop also retires the watchdog (unless the watchdog is the one stopping us).
  # (bash may exec the watchdog's last command, so the watchdog can be this very process.)
  local watchdog
  watchdog=$(cat "$dir/watchdog.pid" 2>/dev/null || true)
  if [ -n "$watchdog" ] && [ "$watchdog" != "$$" ] && [ "$watchdog" != "$PPID" ]; then
    kill "$watchdog" 2>/dev/null || true
  fi
  rm -f "$dir/watchdog.pid"
  for pidfile in "$dir"/controller-manager.pid "$dir"/apiserver.pid "$dir"/etcd.pid; do
    [ -f "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 0.5
  for pidfile in "$dir"/controller-manager.pid "$dir"/apiserver.pid "$dir"/etcd.pid; do
    [ -f "$pidfile" ] || continue
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  build) cmd_build ;;
  start) shift; cmd_start "$@" ;;
  stop) [ $# -eq 2 ] || die "usage: stop DIR"; cmd_stop "$2" ;;
  env) [ $# -eq 2 ] || die "usage: env DIR"; echo "export KUBECONFIG=$(cd "$2" && pwd)/kubeconfig" ;;
  bin-dir) echo "$BIN_DIR" ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
