#!/usr/bin/env bash
# One-shot Superset initialisation, the same natively (via native.sh init) and in compose (the
# superset-init service). Safe to run any number of times:
#   1. migrate the metadata database,
#   2. create the admin from SUPERSET_ADMIN_* when it does not exist yet (never reset it; the
#      password is read from the environment, never passed on a command line),
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

# Not `superset fab create-admin --password ...`: a command line is readable by every user of the
# machine (ps, /proc/PID/cmdline). The code comes on stdin and the password from the environment,
# which only the process owner (and root) can read.
export SUPERSET_ADMIN_PASSWORD
"$PY" - "$ADMIN_USER" "$ADMIN_EMAIL" <<'PYEOF'
import os
import sys

# `python -` puts the working directory first on sys.path: never let a folder named superset/
# there (this repository's root) shadow the real package.
sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
from superset.app import create_app  # noqa: E402

username, email = sys.argv[1], sys.argv[2]


def log(message):
    print(f"[superset-init] {message}", file=sys.stderr)


with create_app().app_context():
    from superset import security_manager as sm

    if sm.find_user(username=username) is not None:
        log(f"admin '{username}' exists (password left as is)")
        sys.exit(0)
    if sm.find_user(email=email) is not None:
        sys.exit(f"[superset-init] another user already has the e-mail {email}")
    log(f"creating admin '{username}'")
    role = sm.find_role(sm.auth_role_admin) or sm.add_role(sm.auth_role_admin)
    user = sm.add_user(
        username=username,
        first_name="Wiki",
        last_name="Streams",
        email=email,
        role=role,
        password=os.environ["SUPERSET_ADMIN_PASSWORD"],
    )
    if not user:
        sys.exit(f"[superset-init] creating admin '{username}' failed (see the log above)")
PYEOF

log "init (roles and permissions)"
superset init

log "importing $BUNDLE_DIR"
# Prints a JSON summary: import_seconds and the dashboard/chart/dataset counts afterwards.
"$PY" "$HERE/bundle.py" import "$BUNDLE_DIR" --username "$ADMIN_USER"
