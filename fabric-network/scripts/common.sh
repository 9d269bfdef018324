# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2034  # the paths and names below are used by the files that source this
# Shared by network.sh and the compose demo's scripts (docker/scripts/): the topology, the work
# folder layout, logging, and where every node is reached.
#
# Sourced, never run. Inputs (all optional):
#   FEDCHAIN_NETWORK_MODE  native (processes on 127.0.0.1, the default) | compose (containers)
#   FEDCHAIN_FABRIC_WORK   work folder (default: fabric-network/.work)
#   FABRIC_NETWORK_DIR     this repository's fabric-network/ folder (default: found from here)

NETWORK_DIR=${FABRIC_NETWORK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# shellcheck source=../topology.env
source "$NETWORK_DIR/topology.env"

read -r -a ORG_LIST <<<"$ORGS"
read -r -a PEER_PORT_LIST <<<"$PEER_PORTS"
read -r -a PEER_CHAINCODE_PORT_LIST <<<"$PEER_CHAINCODE_PORTS"
read -r -a PEER_OPERATIONS_PORT_LIST <<<"$PEER_OPERATIONS_PORTS"

NETWORK_MODE=${FEDCHAIN_NETWORK_MODE:-native}
WORK_DIR=${FEDCHAIN_FABRIC_WORK:-$NETWORK_DIR/.work}
CONFIG_DIR=$NETWORK_DIR/config
PKI_DIR=$WORK_DIR/pki           # fedchain pki init: the organizations (MSP id = org id)
CRYPTO_DIR=$WORK_DIR/crypto     # fedchain pki fabric-nodes: peers, orderer, orderer org
CHANNEL_DIR=$WORK_DIR/channel   # the channel's genesis block
CC_DIR=$WORK_DIR/chaincode      # the ccaas package and its package id
DATA_DIR=$WORK_DIR/data         # ledgers of the processes (native mode)
LOG_DIR=$WORK_DIR/logs
RUN_DIR=$WORK_DIR/run           # PID files
TOML_DIR=$WORK_DIR/fedchain     # fedchain.toml files for the aggregator and each organization
WORK_MARKER=$WORK_DIR/.fedchain-fabric-network

# Inside the compose network every peer listens on these ports of its own container.
COMPOSE_PEER_PORT=7051
COMPOSE_CHAINCODE_ADDRESS=chaincode:$CHAINCODE_PORT

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

case "$NETWORK_MODE" in
native | compose) ;;
*) die "FEDCHAIN_NETWORK_MODE must be 'native' or 'compose', not '$NETWORK_MODE'" ;;
esac

# require_fabric_bins BIN...: every Fabric binary must be on PATH (they are never downloaded).
require_fabric_bins() {
    local bin missing=()
    for bin in "$@"; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    if ((${#missing[@]})); then
        die "Hyperledger Fabric 2.5 binaries not found on PATH: ${missing[*]}. Install them with" \
            "Fabric's install script (curl -sSLO https://raw.githubusercontent.com/hyperledger/fabric/main/scripts/install-fabric.sh;" \
            "bash install-fabric.sh --fabric-version 2.5.12 binary) and add its bin/ folder to PATH;" \
            "see docs/fabric.md, 'Running a network'."
    fi
}

# require_bins BIN...: other tools (node, npm, tar, ...), with a plain message.
require_bins() {
    local bin
    for bin in "$@"; do
        command -v "$bin" >/dev/null 2>&1 || die "'$bin' is required but not found on PATH"
    done
}

# org_index ORG: the position of ORG in ORGS (the port lists follow that order).
org_index() {
    local i
    for i in "${!ORG_LIST[@]}"; do
        if [[ ${ORG_LIST[$i]} == "$1" ]]; then
            echo "$i"
            return 0
        fi
    done
    die "unknown organization '$1' (this network has: $ORGS)"
}

peer_id() { echo "$PEER_NAME.$1"; }
peer_port() { echo "${PEER_PORT_LIST[$(org_index "$1")]}"; }
peer_chaincode_port() { echo "${PEER_CHAINCODE_PORT_LIST[$(org_index "$1")]}"; }
peer_operations_port() { echo "${PEER_OPERATIONS_PORT_LIST[$(org_index "$1")]}"; }

# peer_endpoint ORG: host:port of ORG's peer (Gateway, peer CLI), as seen by clients.
peer_endpoint() {
    if [[ $NETWORK_MODE == compose ]]; then
        echo "$(peer_id "$1"):$COMPOSE_PEER_PORT"
    else
        echo "127.0.0.1:$(peer_port "$1")"
    fi
}

orderer_host() {
    if [[ $NETWORK_MODE == compose ]]; then echo "$ORDERER_NAME.$ORDERER_ORG"; else echo 127.0.0.1; fi
}
orderer_endpoint() { echo "$(orderer_host):$ORDERER_PORT"; }
orderer_admin_endpoint() { echo "$(orderer_host):$ORDERER_ADMIN_PORT"; }

# chaincode_address: where the peers dial the chaincode server (goes into connection.json).
chaincode_address() {
    if [[ $NETWORK_MODE == compose ]]; then
        echo "$COMPOSE_CHAINCODE_ADDRESS"
    else
        echo "127.0.0.1:$CHAINCODE_PORT"
    fi
}

configtx_profile() {
    if [[ $NETWORK_MODE == compose ]]; then echo "$PROFILE_COMPOSE"; else echo "$PROFILE_NATIVE"; fi
}

org_tls_ca() { echo "$PKI_DIR/$1/msp/tlscacerts/ca.pem"; }
orderer_tls_ca() { echo "$CRYPTO_DIR/$ORDERER_ORG/msp/tlscacerts/ca.pem"; }
peer_dir() { echo "$CRYPTO_DIR/$1/peers/$PEER_NAME"; }
orderer_dir() { echo "$CRYPTO_DIR/$ORDERER_ORG/orderers/$ORDERER_NAME"; }
orderer_admin_tls_dir() { echo "$CRYPTO_DIR/$ORDERER_ORG/users/admin/tls"; }

# use_org_admin ORG: make the peer CLI act as ORG's admin against ORG's peer.
use_org_admin() {
    local org=$1
    export FABRIC_CFG_PATH=$CONFIG_DIR
    export CORE_PEER_LOCALMSPID=$org
    export CORE_PEER_MSPCONFIGPATH=$PKI_DIR/$org/users/admin/msp
    export CORE_PEER_ADDRESS
    CORE_PEER_ADDRESS=$(peer_endpoint "$org")
    export CORE_PEER_TLS_ENABLED=true
    export CORE_PEER_TLS_ROOTCERT_FILE
    CORE_PEER_TLS_ROOTCERT_FILE=$(org_tls_ca "$org")
}

# retry ATTEMPTS DELAY_S COMMAND...: run COMMAND until it succeeds (for a node that is still
# electing a Raft leader or catching up with the channel); its last output is shown on failure.
retry() {
    local attempts=$1 delay=$2 n=1 output
    shift 2
    until output=$("$@" 2>&1); do
        if ((n >= attempts)); then
            printf '%s\n' "$output" >&2
            return 1
        fi
        sleep "$delay"
        n=$((n + 1))
    done
    printf '%s\n' "$output"
}
