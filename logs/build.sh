#!/usr/bin/env bash
# Build the native log store (VictoriaLogs) and log collector (wikistreams-otelcol) into var/bin.
#
# Why a script and not `go install`: the versions are pinned in native/versions.env and in the
# go.mod files next to this script (logs/victorialogs, logs/otelcol); the script refuses to
# build when the two disagree, so a version bump is one reviewed change. It uses Go's normal
# module and build caches, so it is idempotent and a warm rebuild only re-links (seconds).
# Static binaries: CGO_ENABLED=0 with the netgo resolver.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${WIKISTREAMS_BIN:-$ROOT/var/bin}"
# shellcheck disable=SC1091
source "$ROOT/native/versions.env"

require_pin() { # go.mod-dir module version
  local have
  have="$(cd "$1" && go list -m -f '{{.Version}}' "$2")"
  if [[ "$have" != "$3" ]]; then
    echo "build.sh: $1/go.mod pins $2 $have but native/versions.env says $3" >&2
    exit 1
  fi
}

require_pin "$ROOT/logs/victorialogs" github.com/VictoriaMetrics/VictoriaLogs "$VICTORIALOGS_VERSION"
require_pin "$ROOT/logs/otelcol" go.opentelemetry.io/collector/otelcol "$OTELCOL_VERSION"
require_pin "$ROOT/logs/otelcol" \
  github.com/open-telemetry/opentelemetry-collector-contrib/receiver/filelogreceiver \
  "$OTELCOL_CONTRIB_VERSION"

mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
build() { # dir output package
  local start=$SECONDS
  (cd "$1" && go build -tags netgo -trimpath -o "$BIN/$2" "$3")
  echo "built $BIN/$2 in $((SECONDS - start))s"
}
build "$ROOT/logs/victorialogs" victoria-logs github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs
build "$ROOT/logs/otelcol" wikistreams-otelcol .
