#!/usr/bin/env bash
# Runs ON the VM; the CD workflow (.github/workflows/cd.yml) has just unpacked the release into
# $WIKISTREAMS_BASE/releases/<tag> and calls it there over SSH:
#   bash /opt/wikistreams/releases/v1.2.3/deploy/remote-deploy.sh v1.2.3 ghcr.io/owner/repo
# It links the release's .env to the secrets file rendered at boot from the secret store (never in
# the repository; docs/deploy.md), pulls the tagged images, upgrades the stack in place (named
# volumes keep the data; the compose project name is fixed to "wikistreams"), waits until every
# service is healthy, then points $WIKISTREAMS_BASE/current at the release and keeps the last five.
set -euo pipefail

tag=${1:?usage: remote-deploy.sh <tag> <registry, e.g. ghcr.io/owner/repo>}
registry=${2:?usage: remote-deploy.sh <tag> <registry, e.g. ghcr.io/owner/repo>}
base=${WIKISTREAMS_BASE:-/opt/wikistreams}
env_file=${WIKISTREAMS_ENV_FILE:-/etc/wikistreams/wikistreams.env}
release="$base/releases/$tag"

die() {
  echo "remote-deploy: $*" >&2
  exit 1
}
[[ -f "$release/docker-compose.yml" ]] || die "no release unpacked at $release"
[[ -r "$env_file" ]] || die "$env_file missing: it is rendered at boot from the secret store (docs/deploy.md)"
if grep -q 'CHANGE_ME' "$env_file"; then
  die "$env_file still has CHANGE_ME placeholders"
fi

ln -sfn "$env_file" "$release/.env"
export WIKISTREAMS_REGISTRY="$registry" WIKISTREAMS_VERSION="$tag"
compose=(docker compose --project-directory "$release"
  -f "$release/docker-compose.yml" -f "$release/deploy/compose.production.yml")

"${compose[@]}" config --quiet
# Production keeps every port on loopback (Caddy is the only public listener, docs/deploy.md);
# a BIND_ADDRESS or DATA_BIND_ADDRESS beyond it is printed as a warning into the deploy log.
bash "$release/tools/exposure-check.sh" "$env_file"
"${compose[@]}" pull --quiet
"${compose[@]}" up -d --no-build --remove-orphans --wait --wait-timeout 900
"${compose[@]}" ps

ln -sfn "$release" "$base/current.new"
mv -T "$base/current.new" "$base/current"
# Keep the five newest releases (rollback = run this script for an older tag).
find "$base/releases" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn | tail -n +6 |
  cut -d' ' -f2- | while read -r old; do rm -rf -- "$old"; done
echo "deployed $tag"
