#!/usr/bin/env bash
# One-shot Superset initialisation, the same natively (via native.sh init) and in compose (the
# superset-init service). Safe to run any number of times:
#   1. migrate the metadata database,
#   2. create the admin from SUPERSET_ADMIN_* when it does not exist yet (never reset it),
#   3. sync roles and permissions,
#   4. import the dashboard bundle from superset/dashboards/ (overwrite by UUID).
# Expects `superset` and a Python with Superset on PATH, and SUPERSET_CONFIG_PATH set.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ADMIN_USER="${SUPERSET_ADMIN_USER:-admin}"
ADMIN_EMAIL="${SUPERSET_ADMIN_EMAIL:-admin@wikistreams.invalid}"
BUNDLE_DIR="${SUPERSET_BUNDLE_DIR:-$HERE/dashboards/wikimedia_live_trends}"
PY="${SUPERSET_PYTHON:-python}"

log() { printf '[superset-init] %s\n' "$*" >&2; }

: "${SUPERSET_ADMIN_PASSWORD:?SUPERSET_ADMIN_PASSWORD must be set}"

log "db upgrade"
superset db upgrade

if superset fab list-users 2>/dev/null | grep -q "username:${ADMIN_USER} "; then
  log "admin '${ADMIN_USER}' exists (password left as is)"
else
  log "creating admin '${ADMIN_USER}'"
  superset fab create-admin --username "$ADMIN_USER" --firstname Wiki --lastname Streams \
    --email "$ADMIN_EMAIL" --password "$SUPERSET_ADMIN_PASSWORD"
fi

log "init (roles and permissions)"
superset init

log "importing $BUNDLE_DIR"
# Prints a JSON summary: import_seconds and the dashboard/chart/dataset counts afterwards.
"$PY" "$HERE/bundle.py" import "$BUNDLE_DIR" --username "$ADMIN_USER"
