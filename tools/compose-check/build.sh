#!/usr/bin/env bash
# Build compose-check into var/bin/compose-check.
#
# Why a script: tests/unit/test_compose.py and people run the same build; it uses Go's normal
# module and build caches (GOMODCACHE, GOCACHE), so it is idempotent and a warm rebuild only
# re-links. -mod=readonly makes a go.mod/go.sum that disagrees with the source fail instead of
# being rewritten. Static binary (CGO_ENABLED=0): nothing on the machine but the file is needed.
# The binary is written to a temporary name and renamed, so a concurrent reader (two pytest
# sessions) never executes a half-written file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${WIKISTREAMS_BIN:-$ROOT/var/bin}"

mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
start=$SECONDS
tmp="$(mktemp -d "$BIN/.compose-check.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
(cd "$HERE" && go build -trimpath -o "$tmp/compose-check" .)
mv -f "$tmp/compose-check" "$BIN/compose-check"
echo "built $BIN/compose-check in $((SECONDS - start))s"
