#!/usr/bin/env bash
# Install the tools that validate infra/ offline (tests/infra): helm, promtool, actionlint
# (built with `go install` into the tool cache) and a Python venv with checkov,
# kubernetes-validate, python-hcl2 and pyyaml. Idempotent; prints nothing when all is present.
#
# python-hcl2 and checkov's bc-python-hcl2 both ship the `hcl2` package, so python-hcl2 goes
# into its own directory inside the venv ($VENV/hcl2-lib, used via PYTHONPATH) instead of
# overwriting the copy checkov needs.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${MAAS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/maas}"
BIN="$CACHE/tools/bin"
VENV="$CACHE/venv-infra"

HELM_VERSION=v3.22.0
PROMETHEUS_VERSION=v0.316.0 # Go module version of Prometheus 3.x (tags v0.3xx.y)
ACTIONLINT_VERSION=v1.7.12
PY_PINS=(checkov==3.3.30 kubernetes-validate==1.37.0 pyyaml==6.0.3)
HCL2_PIN=python-hcl2==8.1.4

log() { printf '[install-infra] %s\n' "$*" >&2; }
mkdir -p "$BIN"

# go_tool BINARY MODULE VERSION PACKAGE: `go install` unless BINARY was built from MODULE@VERSION.
go_tool() {
  local bin=$1 module=$2 version=$3 pkg=$4
  if go version -m "$BIN/$bin" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
    return 0
  fi
  log "$bin $version (go install $pkg)"
  local start=$SECONDS
  GOBIN="$BIN" GOFLAGS="${GOFLAGS:-} -trimpath" go install "$pkg@$version"
  log "$bin built in $((SECONDS - start)) s"
}

go_tool helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
go_tool promtool github.com/prometheus/prometheus "$PROMETHEUS_VERSION" \
  github.com/prometheus/prometheus/cmd/promtool
go_tool actionlint github.com/rhysd/actionlint "$ACTIONLINT_VERSION" \
  github.com/rhysd/actionlint/cmd/actionlint

stamp="$VENV/.pins"
want="${PY_PINS[*]} $HCL2_PIN"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$VENV/bin/checkov" ]; then
  log "infra venv: $want"
  start=$SECONDS
  rm -rf "$VENV"
  UV="$CACHE/uv/bin/uv"
  if [ -x "$UV" ]; then
    export UV_CACHE_DIR="$CACHE/uv-cache"
    "$UV" venv --quiet --python python3.11 "$VENV"
    "$UV" pip install --quiet --python "$VENV/bin/python" "${PY_PINS[@]}"
    "$UV" pip install --quiet --python "$VENV/bin/python" --target "$VENV/hcl2-lib" "$HCL2_PIN"
  else
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "${PY_PINS[@]}"
    "$VENV/bin/pip" install -q --target "$VENV/hcl2-lib" "$HCL2_PIN"
  fi
  echo "$want" > "$stamp"
  log "infra venv ready in $((SECONDS - start)) s"
fi
