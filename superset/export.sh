#!/usr/bin/env bash
# `make superset-export`: write the dashboard as it is in Superset now back into git's YAML.
#
# Workflow: change the dashboard in the UI (or open a new chart once in Explore so Superset saves
# its query context), run this, review `git diff superset/dashboards/`, commit. The YAML is
# normalised (stable file names, sorted keys, instance ids replaced, Druid host templated), so the
# diff shows only what changed. Runs in an app context: no server or password needed.
#
#   superset/export.sh [--zip var/data/superset/last-export.zip]
#
# `native.sh export` does the work: the same venv, paths and secrets (environment, then .env,
# then the generated var/data/superset/secrets.env) as the server it exports from.
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/native.sh" export "$@"
