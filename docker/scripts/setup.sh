#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Compose service "setup" (fedchain image), run once before the Fabric nodes start: the
# consortium PKI (org1..org3, aggregator org1 with host name "aggregator") and the peer and
# orderer identities issued by the same CAs, into the shared volume. The same code as
# `fabric-network/network.sh up`; what exists is kept, so `docker compose up` can run again.
set -euo pipefail

export FEDCHAIN_NETWORK_MODE=compose
# The container paths of docker/compose.yaml (overridable to run this script elsewhere).
export FEDCHAIN_FABRIC_WORK=${FEDCHAIN_FABRIC_WORK:-/shared}
export FABRIC_NETWORK_DIR=${FABRIC_NETWORK_DIR:-/fedchain/fabric-network}
# shellcheck source=../../fabric-network/scripts/common.sh
source "$FABRIC_NETWORK_DIR/scripts/common.sh"
# shellcheck source=../../fabric-network/scripts/crypto.sh
source "$FABRIC_NETWORK_DIR/scripts/crypto.sh"

generate_crypto
log "setup done: $PKI_DIR and $CRYPTO_DIR"
