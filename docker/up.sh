#!/usr/bin/env bash
# Bring up the fedchain multi-organization demo (docker/compose.yaml) and follow the training
# until the aggregator finishes. Needs Docker with Compose v2; pulls the hyperledger/fabric-*
# 2.5 images and builds the fedchain and chaincode images on first use.
#
# Usage: docker/up.sh [--detach]     (--detach: start and return; follow with
#                                      `docker compose -f docker/compose.yaml logs -f`)
# Tear down with docker/down.sh. Settings: docker/.env (see docker/.env.example).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

detach=false
case "${1:-}" in
"") ;;
--detach | -d) detach=true ;;
*) die "usage: docker/up.sh [--detach]" ;;
esac

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker compose version >/dev/null 2>&1 || die "Docker Compose v2 ('docker compose') is required"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable; is it running?"
[[ -f .env ]] || echo "note: no docker/.env, using the defaults (see docker/.env.example)"

docker compose up --build --detach
if $detach; then
    echo "started; follow with: docker compose -f docker/compose.yaml logs -f aggregator"
    exit 0
fi

echo "following the training (Ctrl-C stops following; the demo keeps running)"
docker compose logs --follow aggregator org1 org2 org3 &
logs_pid=$!
trap 'kill "$logs_pid" 2>/dev/null || true' EXIT

aggregator=$(docker compose ps --all --quiet aggregator)
[[ -n $aggregator ]] || die "the aggregator container was not created"
status=$(docker wait "$aggregator")
sleep 1 # let the log follower print the last lines
if [[ $status == 0 ]]; then
    echo "training finished; remove the demo with docker/down.sh"
else
    echo "the aggregator exited with status $status; see: docker compose -f docker/compose.yaml logs" >&2
fi
exit "$status"
