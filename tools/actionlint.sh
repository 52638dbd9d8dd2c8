#!/usr/bin/env bash
# Lint the GitHub Actions workflows (.github/workflows/*.yml) with actionlint, pinned below.
# Installs actionlint into var/bin (or $WIKISTREAMS_BIN) from the Go module proxy when it is
# missing or another version, so it needs Go the first time. `make lint`, CI's lint job and
# tests/unit/test_workflows.py run this. When the shellcheck binary is on PATH (Debian package
# "shellcheck"), actionlint also checks every `run:` script with it; CI's lint job installs it.
#   bash tools/actionlint.sh [extra actionlint flags]
set -euo pipefail
cd "$(dirname "$0")/.."

# The newest release on the Go module proxy: go list -m -versions github.com/rhysd/actionlint
ACTIONLINT_VERSION=v1.7.12
BIN_DIR="${WIKISTREAMS_BIN:-$PWD/var/bin}"
ACTIONLINT="$BIN_DIR/actionlint"

installed() { [[ -x "$ACTIONLINT" ]] && [[ "$("$ACTIONLINT" -version | head -1)" == "$ACTIONLINT_VERSION" ]]; }

if ! installed; then
  command -v go >/dev/null || { echo "actionlint.sh: go is needed to install actionlint $ACTIONLINT_VERSION" >&2; exit 1; }
  mkdir -p "$BIN_DIR"
  echo "actionlint.sh: installing actionlint $ACTIONLINT_VERSION into $BIN_DIR" >&2
  # Into a temporary GOBIN, then renamed: a concurrent run never executes a half-written file.
  tmp="$(mktemp -d "$BIN_DIR/.actionlint.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" CGO_ENABLED=0 go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  mv -f "$tmp/actionlint" "$ACTIONLINT"
fi

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if ((${#workflows[@]} == 0)); then
  echo "actionlint.sh: no workflow files under .github/workflows" >&2
  exit 1
fi
"$ACTIONLINT" -no-color "$@" "${workflows[@]}"
