#!/usr/bin/env bash
# Warn before the stack is started with ports beyond loopback.
#
#   tools/exposure-check.sh [--native] [ENV_FILE]     (ENV_FILE default: .env; absent = defaults)
#
# compose publishes two groups of ports (docker-compose.yml, compose/*.yml):
#   BIND_ADDRESS       the web UIs, Superset :8088 and Grafana :3000. They have their own logins
#                      but speak plain HTTP: open them only behind a TLS proxy (deploy/Caddyfile).
#   DATA_BIND_ADDRESS  Kafka :9092 (PLAINTEXT, no authentication) and Druid :8081/:8082 (no
#                      authentication): whoever reaches them reads and writes every topic, queries
#                      every row, and submits or kills ingestion. TLS in front adds no login.
# Both default to 127.0.0.1. A non-loopback DATA_BIND_ADDRESS is only ever an explicit choice, and
# this prints what must be added first (docs/deploy.md, "Opening Kafka or Druid"). The native stack
# (`make up`, --native) binds 127.0.0.1 whatever they say, and says so.
# Values are read as compose reads them: the environment wins over ENV_FILE. Always exits 0 (it
# warns, it does not refuse) unless its arguments are wrong.
set -euo pipefail

native=0
if [[ "${1:-}" == "--native" ]]; then
  native=1
  shift
fi
[[ $# -le 1 ]] || {
  echo "usage: exposure-check.sh [--native] [ENV_FILE]" >&2
  exit 2
}
env_file=${1:-.env}

# setting NAME: the environment's value if set, else the last NAME= line of ENV_FILE, unquoted.
setting() {
  local name=$1 line value
  if [[ -n "${!name+x}" ]]; then
    printf '%s' "${!name}"
    return
  fi
  [[ -r "$env_file" ]] || return 0
  line=$(grep -E "^[[:space:]]*${name}[[:space:]]*=" "$env_file" | tail -n 1) || return 0
  value=${line#*=}
  value=${value#"${value%%[![:space:]]*}"}
  value=${value%"${value##*[![:space:]]}"}
  value=${value#[\"\']}
  value=${value%[\"\']}
  printf '%s' "$value"
}

loopback() {
  case "$1" in
  "" | localhost | ::1 | "[::1]" | 127.*) return 0 ;;
  *) return 1 ;;
  esac
}

bind=$(setting BIND_ADDRESS)
data=$(setting DATA_BIND_ADDRESS)
kafka_port=$(setting KAFKA_PORT)

if ((native)); then
  for name in BIND_ADDRESS DATA_BIND_ADDRESS; do
    value=$(setting "$name")
    if ! loopback "$value"; then
      echo "exposure-check: note: $name=$value applies to docker compose only; the native stack binds every port to 127.0.0.1" >&2
    fi
  done
  exit 0
fi

if ! loopback "$data"; then
  cat >&2 <<WARN
exposure-check: WARNING: DATA_BIND_ADDRESS=$data publishes Kafka :${kafka_port:-9092} and Druid :8081/:8082 beyond loopback.
exposure-check: WARNING: they have NO authentication here: Kafka's listener is PLAINTEXT and Druid has no
exposure-check: WARNING: authenticator, so anyone who reaches $data can read and write every topic, query every
exposure-check: WARNING: row and submit or kill ingestion. TLS in front of them adds no login. Before opening them,
exposure-check: WARNING: add Druid basic auth (druid-basic-security) and a Kafka SASL_SSL/SCRAM listener, and
exposure-check: WARNING: firewall the ports to known clients: docs/deploy.md, "Opening Kafka or Druid".
WARN
fi
if ! loopback "$bind"; then
  cat >&2 <<WARN
exposure-check: WARNING: BIND_ADDRESS=$bind publishes Superset :8088 and Grafana :3000 over plain HTTP beyond
exposure-check: WARNING: loopback: their logins and session cookies cross the network unencrypted. Serve them
exposure-check: WARNING: through a TLS proxy instead (deploy/Caddyfile) and keep BIND_ADDRESS=127.0.0.1.
WARN
fi
exit 0
