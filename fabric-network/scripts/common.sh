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

# --- ports (native mode) ----------------------------------------------------------------------
# topology.env holds the default ports. FEDCHAIN_FABRIC_PORT_BASE=B moves every one of them by
# B - 7000 (B=20000: orderer 20050, peers 20051/21051/22051, chaincode 22999, ...), and
# FEDCHAIN_FABRIC_<NAME> (e.g. FEDCHAIN_FABRIC_PEER_PORTS="30051 30052 30053") sets one variable
# after that. `up` records the ports it used in WORK_DIR/ports.env; later commands on that work
# folder use the recorded ports, and refuse an environment asking for others.
PORT_VARS=(ORDERER_PORT ORDERER_ADMIN_PORT ORDERER_OPERATIONS_PORT PEER_PORTS PEER_CHAINCODE_PORTS
    PEER_OPERATIONS_PORTS CHAINCODE_PORT AGGREGATOR_PORT)
PORTS_FILE=$WORK_DIR/ports.env
DEFAULT_ORDERER_PORT=$ORDERER_PORT
DEFAULT_PEER_PORTS=$PEER_PORTS

# shift_ports DELTA LIST: every port of LIST moved by DELTA.
shift_ports() {
    local delta=$1 port out=()
    for port in $2; do
        out+=($((port + delta)))
    done
    echo "${out[*]}"
}

# requested_ports: set the port variables from topology.env and the environment; succeed only
# if the environment asked for anything.
requested_ports() {
    local var override asked=1
    if [[ -n ${FEDCHAIN_FABRIC_PORT_BASE:-} ]]; then
        [[ $FEDCHAIN_FABRIC_PORT_BASE =~ ^[0-9]+$ ]] ||
            die "FEDCHAIN_FABRIC_PORT_BASE must be a number, not '$FEDCHAIN_FABRIC_PORT_BASE'"
        for var in "${PORT_VARS[@]}"; do
            printf -v "$var" '%s' "$(shift_ports $((FEDCHAIN_FABRIC_PORT_BASE - 7000)) "${!var}")"
        done
        asked=0
    fi
    for var in "${PORT_VARS[@]}"; do
        override=FEDCHAIN_FABRIC_$var
        if [[ -n ${!override:-} ]]; then
            printf -v "$var" '%s' "${!override}"
            asked=0
        fi
    done
    return $asked
}

ports_summary() {
    local var
    for var in "${PORT_VARS[@]}"; do
        printf '%s="%s"\n' "$var" "${!var}"
    done
}

# check_ports: numbers in 1025-65535, one per organization in the lists, all distinct.
check_ports() {
    local var list all=() port
    for var in PEER_PORTS PEER_CHAINCODE_PORTS PEER_OPERATIONS_PORTS; do
        read -r -a list <<<"${!var}"
        ((${#list[@]} == ${#ORG_LIST[@]})) ||
            die "$var needs one port per organization ($ORGS), not '${!var}'"
    done
    for var in "${PORT_VARS[@]}"; do
        for port in ${!var}; do
            if ! [[ $port =~ ^[0-9]+$ ]] || ((port <= 1024 || port >= 65536)); then
                die "$var: '$port' is not a port in 1025-65535"
            fi
            all+=("$port")
        done
    done
    [[ $(printf '%s\n' "${all[@]}" | sort | uniq -d) == "" ]] ||
        die "two services would share a port: $(ports_summary | tr '\n' ' ')"
}

read -r -a ORG_LIST <<<"$ORGS"
if [[ $NETWORK_MODE == native ]]; then
    if requested_ports; then PORTS_ASKED=1; else PORTS_ASKED=0; fi
    if [[ -f $PORTS_FILE ]]; then
        wanted=$(ports_summary)
        # shellcheck source=/dev/null
        source "$PORTS_FILE"
        if ((PORTS_ASKED)) && [[ $wanted != "$(ports_summary)" ]]; then
            die "$WORK_DIR was made with other ports ($(tr '\n' ' ' <"$PORTS_FILE")); use the" \
                "same FEDCHAIN_FABRIC_PORT_BASE / FEDCHAIN_FABRIC_* ports, or 'network.sh clean' it"
        fi
        unset wanted
    fi
    check_ports
fi
read -r -a PEER_PORT_LIST <<<"$PEER_PORTS"
read -r -a PEER_CHAINCODE_PORT_LIST <<<"$PEER_CHAINCODE_PORTS"
read -r -a PEER_OPERATIONS_PORT_LIST <<<"$PEER_OPERATIONS_PORTS"

# record_ports: WORK_DIR/ports.env, the ports this work folder's network uses.
record_ports() {
    [[ $NETWORK_MODE == native ]] || return 0
    ports_summary >"$PORTS_FILE.tmp"
    mv "$PORTS_FILE.tmp" "$PORTS_FILE"
}

# native_configtx SRC DEST: configtx.yaml with the native profile's loopback ports (the orderer
# endpoint, its Raft consenter and the anchor peers) moved to the ports in use.
native_configtx() {
    awk -v oport="$ORDERER_PORT" -v dport="$DEFAULT_ORDERER_PORT" \
        -v peers="$PEER_PORTS" -v dpeers="$DEFAULT_PEER_PORTS" '
        BEGIN {
            map[dport] = oport
            n = split(peers, p, " "); split(dpeers, d, " ")
            for (i = 1; i <= n; i++) map[d[i]] = p[i]
        }
        $0 ~ "^ *- 127\\.0\\.0\\.1:" dport "$" { sub(dport "$", oport) }
        loopback && /^ *Port: [0-9]+$/ {
            port = $2
            if (port in map) sub(port "$", map[port])
        }
        { loopback = ($0 ~ /Host: 127\.0\.0\.1$/); print }
    ' "$1" >"$2"
}

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
