#!/usr/bin/env bash
# Install what the local stack and the tests need, skipping what is already there.
# Downloads and builds live in a cache outside the clone (${XDG_CACHE_HOME:-~/.cache}/maas),
# so a second clone on the same machine sets up in seconds; the clone gets links to it.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${MAAS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/maas}"
FERRETDB_VERSION=v1.24.2
UV_VERSION=0.13.9
mkdir -p "$CACHE/tools/bin"
export UV_CACHE_DIR="$CACHE/uv-cache"
log() { printf '[install] %s\n' "$*" >&2; }

apt_packages=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_packages+=(redis-server redis-tools)
command -v wrk >/dev/null || apt_packages+=(wrk)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || apt_packages+=(fonts-dejavu-core)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || apt_packages+=(postgresql-15)
# The operators' console is tested in a real headless browser.
command -v chromium >/dev/null || apt_packages+=(chromium)
command -v chromedriver >/dev/null || apt_packages+=(chromium-driver)
if [ ${#apt_packages[@]} -gt 0 ]; then
  log "apt-get install ${apt_packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  if command -v systemctl >/dev/null; then
    systemctl disable --now redis-server postgresql >/dev/null 2>&1 || true
  fi
fi

UV="$CACHE/uv/bin/uv"
if ! "$UV" --version 2>/dev/null | grep -q "$UV_VERSION"; then
  log "uv $UV_VERSION"
  python3 -m venv "$CACHE/uv"
  "$CACHE/uv/bin/pip" install -q "uv==$UV_VERSION"
fi
"$UV" sync --frozen --python python3.11 --quiet

# FerretDB embeds its version from build/version/version.txt, which the published module
# lacks; build from a copy of the downloaded module with that file written in, and with
# ferretdb.patch applied (string _id filters and _id-ordered pages served by PostgreSQL's
# _id index; updates that do not deadlock the connection pool and are atomic per document). Each build lives in a
# directory named after the patch's hash, never rewritten, and the clone links to its own.
PATCH=infra/local/ferretdb.patch
build_id="$FERRETDB_VERSION-$(sha256sum "$PATCH" | cut -c1-12)"
FERRETDB_DIR="$CACHE/ferretdb/$build_id"
if ! "$FERRETDB_DIR/ferretdb" --version 2>/dev/null | grep -q "commit: $build_id"; then
  log "FerretDB $FERRETDB_VERSION + $PATCH (go build)"
  src=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  build=$(mktemp -d)
  cp -r "$src/." "$build/"
  chmod -R u+w "$build"
  echo "$FERRETDB_VERSION" > "$build/build/version/version.txt"
  echo "$build_id" > "$build/build/version/commit.txt"
  git -C "$build" apply "$PWD/$PATCH"
  mkdir -p "$FERRETDB_DIR"
  (cd "$build" && go build -trimpath -o "$FERRETDB_DIR/ferretdb.tmp" ./cmd/ferretdb)
  mv -f "$FERRETDB_DIR/ferretdb.tmp" "$FERRETDB_DIR/ferretdb"
  rm -rf "$build"
fi

# mongo-java-server with its H2 file backend, a measured candidate only installed when asked
# for (MAAS_LOCAL_STORE=mongo-java-server): the jars from Maven Central
# (infra/local/mongo-java-server/pom.xml, into a repository in the cache) and our launcher
# compiled beside them, in a directory named after both files' hash.
MJS_SRC=infra/local/mongo-java-server
mjs_id=$(cat "$MJS_SRC/pom.xml" "$MJS_SRC/DurableStore.java" | sha256sum | cut -c1-12)
MJS_DIR="$CACHE/mongo-java-server/$mjs_id"
if [ "${MAAS_LOCAL_STORE:-ferretdb}" = mongo-java-server ] \
   && [ ! -f "$MJS_DIR/classes/DurableStore.class" ]; then
  log "mongo-java-server (mvn dependency:copy-dependencies) + DurableStore (javac)"
  rm -rf "$MJS_DIR.tmp"
  mvn -q -B -Dstyle.color=never -f "$MJS_SRC/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$MJS_DIR.tmp/lib"
  javac -cp "$MJS_DIR.tmp/lib/*" -d "$MJS_DIR.tmp/classes" "$MJS_SRC/DurableStore.java"
  rm -rf "$MJS_DIR"
  mv "$MJS_DIR.tmp" "$MJS_DIR"
fi

LOCALSTACK_VENV="$CACHE/venv-localstack"
stamp="$LOCALSTACK_VENV/.requirements.sha256"
want=$(sha256sum infra/local/localstack-requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "LocalStack venv"
  rm -rf "$LOCALSTACK_VENV"
  python3 -m venv "$LOCALSTACK_VENV"
  "$LOCALSTACK_VENV/bin/pip" install -q --no-deps -r infra/local/localstack-requirements.txt
  echo "$want" > "$stamp"
fi

ln -sfn "$CACHE/tools" .tools
ln -sfn "$FERRETDB_DIR" .ferretdb
if [ -d "$MJS_DIR" ]; then ln -sfn "$MJS_DIR" .mongo-java-server; fi
ln -sfn "$LOCALSTACK_VENV" .venv-localstack
