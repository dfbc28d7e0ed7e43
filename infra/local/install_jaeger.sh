#!/usr/bin/env bash
# Build Jaeger (all in one: OTLP receiver, in-memory store, UI) into the tool cache, for
# `make run TRACING=1` only: it is large, so neither `make setup` nor `make test` needs it
# (tests use a small OTLP receiver). Idempotent; prints nothing when it is present.
#
# v1.75.0: the newest release the Go module proxy serves as approved (v1.76.0 is served
# but not an approved release). Its module carries the v2 binary, `cmd/jaeger`.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${MAAS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/maas}"
BIN="$CACHE/tools/bin"
JAEGER_VERSION=v1.75.0

mkdir -p "$BIN"
if go version -m "$BIN/jaeger" 2>/dev/null |
  grep -qE "^[[:space:]]+mod[[:space:]]+github.com/jaegertracing/jaeger[[:space:]]+$JAEGER_VERSION([[:space:]]|$)"; then
  exit 0
fi
printf '[install-jaeger] jaeger %s (go install; several minutes the first time)\n' "$JAEGER_VERSION" >&2
start=$SECONDS
# Jaeger's go.mod has replace directives, which `go install pkg@version` refuses: it is
# built as a tool of a module of our own instead.
build="$CACHE/jaeger-build"
rm -rf "$build" && mkdir -p "$build"
(
  cd "$build"
  go mod init maas.local/jaeger-build >/dev/null 2>&1
  go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
  go build -trimpath -o "$BIN/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
)
mv "$BIN/jaeger.tmp" "$BIN/jaeger"
printf '[install-jaeger] built in %s s\n' "$((SECONDS - start))" >&2
