#!/usr/bin/env bash
# One-shot Superset initialisation, the same natively (via native.sh init) and in compose (the
# superset-init service). Safe to run any number of times:
#   1. migrate the metadata database,
#   2. create the admin from SUPERSET_ADMIN_*, or set its password when SUPERSET_ADMIN_PASSWORD
#      changed since the last init (a password changed in the UI stays while it has not; the
#      password is read from the environment, never passed on a command line),
#   3. sync roles and permissions,
#   4. import the dashboard bundle from superset/dashboards/ (overwrite by UUID).
# Expects `superset` and a Python with Superset and the wikistreams package (superset/native.sh
# install, or the image) on PATH, and SUPERSET_CONFIG_PATH set.
set -euo pipefail
# `python -m` would put the working directory first on sys.path: a folder named superset/ there
# (this repository's root) must never shadow the real package.
export PYTHONSAFEPATH=1

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ADMIN_USER="${SUPERSET_ADMIN_USER:-admin}"
ADMIN_EMAIL="${SUPERSET_ADMIN_EMAIL:-admin@wikistreams.invalid}"
BUNDLE_DIR="${SUPERSET_BUNDLE_DIR:-$HERE/dashboards/wikimedia_live_trends}"
PY="${SUPERSET_PYTHON:-python}"

log() { printf '[superset-init] %s\n' "$*" >&2; }

: "${SUPERSET_ADMIN_PASSWORD:?SUPERSET_ADMIN_PASSWORD must be set}"

log "db upgrade"
superset db upgrade

# Not `superset fab create-admin --password ...`: a command line is readable by every user of the
# machine (ps, /proc/PID/cmdline). The password goes through the environment, which only the
# process owner (and root) can read.
export SUPERSET_ADMIN_PASSWORD
"$PY" -m wikistreams.superset.cli create-admin --username "$ADMIN_USER" --email "$ADMIN_EMAIL"

log "init (roles and permissions)"
superset init

log "importing $BUNDLE_DIR"
# Prints a JSON summary: import_seconds and the dashboard/chart/dataset counts afterwards.
"$PY" -m wikistreams.superset.cli import "$BUNDLE_DIR" --username "$ADMIN_USER"
