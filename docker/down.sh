#!/usr/bin/env bash
# Tear down the fedchain compose demo: stop and remove its containers and network, and its
# volumes (the PKI, the ledgers, the chaincode package) except "models", the aggregator's global
# models, which stay so that the run's model files can still be checked against their recorded
# hashes (docker/README.md). --models removes that volume too.
#
# Usage: docker/down.sh [--models] [--images]   (--images: also remove the locally built images)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

usage() {
    echo "usage: docker/down.sh [--models] [--images]" >&2
    exit 2
}

args=(--remove-orphans)
delete_models=false
for arg in "$@"; do
    case "$arg" in
    --models) delete_models=true ;;
    --images) args+=(--rmi local) ;;
    *) usage ;;
    esac
done
command -v docker >/dev/null 2>&1 || { echo "error: docker is not installed" >&2; exit 1; }

project=${COMPOSE_PROJECT_NAME:-fedchain} # compose.yaml's `name:`
# rm --volumes: the containers with their anonymous volumes (a Fabric image's VOLUME folders);
# then down for the network (and images); then the named volumes, below.
docker compose --profile audit rm --stop --force --volumes
docker compose --profile audit down "${args[@]}"
# The project's volumes, each with its compose name; all but "models" unless --models.
while read -r volume name; do
    [[ -n $volume ]] || continue
    if [[ $name == models ]] && ! $delete_models; then
        echo "keeping volume $volume (the models; docker/down.sh --models removes it)"
        continue
    fi
    docker volume rm "$volume" >/dev/null
    echo "removed volume $volume"
done < <(docker volume ls --filter "label=com.docker.compose.project=$project" \
    --format '{{.Name}} {{.Label "com.docker.compose.volume"}}')
