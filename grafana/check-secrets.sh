#!/bin/sh
# Compose entrypoint of the grafana service: refuse to start with a missing or placeholder admin
# password or alert webhook, then hand over to the image's own entrypoint (/run.sh).
# Why: the provisioning is public in this repository, so the only secrets are these variables,
# and a default like "admin" would leave a reachable Grafana open.
set -eu

fail() { echo "check-secrets: $*" >&2; exit 64; }

pw="${GF_SECURITY_ADMIN_PASSWORD:-}"
[ -n "$pw" ] || fail "GF_SECURITY_ADMIN_PASSWORD is empty (set GRAFANA_ADMIN_PASSWORD in .env)"
[ "${#pw}" -ge 12 ] || fail "GF_SECURITY_ADMIN_PASSWORD is shorter than 12 characters"
lower="$(printf '%s' "$pw" | tr '[:upper:]' '[:lower:]')"
case "$lower" in
  admin|password|secret|grafana|*change*me*|*placeholder*|*example*|xxx*|"<"*)
    fail "GF_SECURITY_ADMIN_PASSWORD is a placeholder; set a real one in .env" ;;
esac
[ "${GF_AUTH_ANONYMOUS_ENABLED:-false}" = "false" ] || fail "anonymous access must stay disabled"
case "${ALERT_WEBHOOK_URL:-}" in
  http://*|https://*) ;;
  *) fail "ALERT_WEBHOOK_URL must be an http(s) URL (set it in .env)" ;;
esac
hook="$(printf '%s' "$ALERT_WEBHOOK_URL" | tr '[:upper:]' '[:lower:]')"
case "$hook" in
  *change*me*|*placeholder*|*example.*|*.invalid*|*.invalid) fail "ALERT_WEBHOOK_URL is a placeholder" ;;
esac

exec /run.sh "$@"
