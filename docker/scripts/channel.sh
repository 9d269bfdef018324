#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Compose service "channel" (hyperledger/fabric-tools image), run once the orderer and the peers
# have started: the channel's genesis block, the orderer and every peer joining it, and the
# chaincode package installed, approved and committed (its package id goes to
# /shared/chaincode/package_id for the chaincode service); it completes only once every peer's
# discovery names every organization's peer as an endorser. The same code as
# `fabric-network/network.sh up`; every step skips what is already done.
set -euo pipefail

export FEDCHAIN_NETWORK_MODE=compose
# The container paths of docker/compose.yaml (overridable to run this script elsewhere).
export FEDCHAIN_FABRIC_WORK=${FEDCHAIN_FABRIC_WORK:-/shared}
export FABRIC_NETWORK_DIR=${FABRIC_NETWORK_DIR:-/fedchain/fabric-network}
# shellcheck source=../../fabric-network/scripts/common.sh
source "$FABRIC_NETWORK_DIR/scripts/common.sh"
# shellcheck source=../../fabric-network/scripts/channel.sh
source "$FABRIC_NETWORK_DIR/scripts/channel.sh"
# shellcheck source=../../fabric-network/scripts/chaincode.sh
source "$FABRIC_NETWORK_DIR/scripts/chaincode.sh"

require_fabric_bins peer configtxgen osnadmin discover

# The containers have started, but their nodes may still be initializing.
log "waiting for the orderer and the peers"
retry 60 1 osnadmin_call channel list >/dev/null || die "the orderer does not answer"
for org in "${ORG_LIST[@]}"; do
    use_org_admin "$org"
    retry 60 1 peer channel list >/dev/null || die "$(peer_id "$org") does not answer"
done

create_channel
deploy_definition
# Ready only when every peer's discovery names every organization's peer as an endorser, so
# the aggregator's first publish does not meet "no peer combination can satisfy the policy".
wait_endorsers "$CHAINCODE_NAME"
log "channel $CHANNEL is ready; chaincode package id $(package_id)"
