#!/usr/bin/env bash
# Tear down the fedchain compose demo: stop and remove its containers, network and volumes (the
# PKI, the ledgers and the chaincode package go with them).
#
# Usage: docker/down.sh [--images]    (--images: also remove the locally built images)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

args=(--volumes --remove-orphans)
case "${1:-}" in
"") ;;
--images) args+=(--rmi local) ;;
*)
    echo "usage: docker/down.sh [--images]" >&2
    exit 2
    ;;
esac
command -v docker >/dev/null 2>&1 || { echo "error: docker is not installed" >&2; exit 1; }
docker compose down "${args[@]}"
