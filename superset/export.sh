#!/usr/bin/env bash
# `make superset-export`: write the dashboard as it is in Superset now back into git's YAML.
#
# Workflow: change the dashboard in the UI (or open a new chart once in Explore so Superset saves
# its query context), run this, review `git diff superset/dashboards/`, commit. The YAML is
# normalised (stable file names, sorted keys, instance ids replaced, Druid host templated), so the
# diff shows only what changed. Runs in an app context: no server or password needed.
#
#   superset/export.sh [--zip var/data/superset/last-export.zip]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="${SUPERSET_VENV:-$ROOT/var/superset-venv}"
BUNDLE_DIR="${SUPERSET_BUNDLE_DIR:-$HERE/dashboards/wikimedia_live_trends}"
export SUPERSET_HOME="${SUPERSET_HOME:-$ROOT/var/data/superset}"
export SUPERSET_CONFIG_PATH="${SUPERSET_CONFIG_PATH:-$HERE/superset_config.py}"
export PYTHONSAFEPATH=1

if [ -z "${SUPERSET_SECRET_KEY:-}" ]; then
  # Same secrets as the server (the config refuses to load without them).
  for f in "$ROOT/.env" "$SUPERSET_HOME/secrets.env"; do
    [ -f "$f" ] && { set -a; . "$f"; set +a; }
  done
fi
PY="$VENV/bin/python"
[ -x "$PY" ] || PY=python
"$PY" -m wikistreams.superset.cli export "$BUNDLE_DIR" "$@"
git -C "$ROOT" status --short -- "$BUNDLE_DIR" || true
