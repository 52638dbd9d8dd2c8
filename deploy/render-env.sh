#!/usr/bin/env bash
# Runs ON the VM at boot (systemd unit in docs/deploy.md) and before a secret rotation: renders
# the stack's .env from AWS SSM Parameter Store, so no secret is ever in the repository or the
# image. Every parameter under $SSM_PATH (e.g. /wikistreams/prod/SUPERSET_SECRET_KEY, SecureString)
# becomes one KEY='value' line (single quotes: Compose and dotenv take the value literally, so a
# `$` or `#` in a secret survives). Needs the aws CLI and jq, and an instance role allowed
# ssm:GetParametersByPath on that path and kms:Decrypt on its key.
#   deploy/render-env.sh [/wikistreams/prod] [/etc/wikistreams/wikistreams.env]
set -euo pipefail

ssm_path=${1:-${SSM_PATH:-/wikistreams/prod}}
out=${2:-${WIKISTREAMS_ENV_FILE:-/etc/wikistreams/wikistreams.env}}

umask 077
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT

aws ssm get-parameters-by-path --path "$ssm_path" --recursive --with-decryption --output json |
  jq -r '.Parameters[]
    | if (.Value | test("[\n\r\u0027]")) then error("\(.Name): newline or single quote in value")
      else "\(.Name | split("/") | last)=\u0027\(.Value)\u0027" end' >"$tmp"

# The stack refuses placeholders and missing secrets anyway; failing here names the cause sooner.
for key in DRUID_METADATA_PASSWORD SUPERSET_SECRET_KEY SUPERSET_ADMIN_PASSWORD SUPERSET_DB_PASSWORD \
  GRAFANA_ADMIN_PASSWORD ALERT_WEBHOOK_URL USER_AGENT_CONTACT SUPERSET_HOSTNAME GRAFANA_HOSTNAME ACME_EMAIL; do
  grep -q "^$key='." "$tmp" || { echo "render-env: $ssm_path/$key is missing" >&2; exit 1; }
done
if grep -q 'CHANGE_ME' "$tmp"; then
  echo "render-env: a parameter under $ssm_path still holds a CHANGE_ME placeholder" >&2
  exit 1
fi
# The producer's own contact rule (stdlib Python, no install needed): a placeholder or reserved
# domain here would reach Wikimedia as the operator's contact.
contact=$(sed -n "s/^USER_AGENT_CONTACT='\(.*\)'$/\1/p" "$tmp")
python3 "$(dirname "$0")/../src/wikistreams/producer/contact.py" "$contact" ||
  { echo "render-env: fix $ssm_path/USER_AGENT_CONTACT" >&2; exit 1; }
# Readable by the docker group (the deploy user runs compose): its members are root-equivalent
# anyway, since `docker inspect` shows every container's environment.
chgrp "${WIKISTREAMS_ENV_GROUP:-docker}" "$tmp"
chmod 0640 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "render-env: wrote $(wc -l <"$out") settings from $ssm_path to $out"
