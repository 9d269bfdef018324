#!/usr/bin/env bash
# A local Hyperledger Fabric 2.5 network for fedchain, from Fabric's own binaries on PATH (peer,
# orderer, configtxgen, osnadmin) run as plain processes on 127.0.0.1: one Raft orderer, one
# peer per organization (org1, org2, org3) with the Gateway enabled, the channel "fedchain" and
# the fedchain chaincode as a service. Nothing is downloaded; crypto comes from fedchain's PKI.
#
# Usage: fabric-network/network.sh COMMAND [ARGS]
#   up                       everything below, in order, then wait until every peer's discovery
#                            names every organization's peer as an endorser; safe to run again
#   down                     stop every process (by PID file); keep the work folder
#   clean                    down, then delete the work folder
#   crypto                   create the PKI and the peer/orderer identities (no Fabric needed)
#   channel                  create the channel and join the orderer and peers to it
#   deploy                   install, approve and commit the chaincode; start its server
#   start                    start whichever node or chaincode server is not running
#   define NAME...           commit the chaincode under more names (each an empty namespace)
#   env [ORG]                print the exports that make the peer CLI ORG's admin
#   toml [ORG [server|client]]  print a fedchain.toml (default: the aggregator's; ORG: its client)
#   status                   show which processes run
#
# Environment: FEDCHAIN_FABRIC_WORK (work folder, default fabric-network/.work),
# FEDCHAIN_FABRIC_PORT_BASE (moves every port by BASE - 7000), FEDCHAIN_FABRIC_CONVERGE_TIMEOUT
# (seconds up, start and define wait for discovery to name every endorser, default 120), FEDCHAIN_FABRIC_<PORT VARIABLE>
# (one port or port list of topology.env), FEDCHAIN_CCAAS_BUILDER (fedchain | fabric | a
# builder folder), FABRIC_LOGGING_SPEC.
# See docs/fabric.md, "Running a network".
set -euo pipefail

FABRIC_NETWORK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export FEDCHAIN_NETWORK_MODE=native
for part in common crypto nodes channel chaincode toml; do
    # shellcheck source=/dev/null
    source "$FABRIC_NETWORK_DIR/scripts/$part.sh"
done

usage() {
    sed -n '/^# Usage:/,/^# See docs/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# check_fabric_version: warn (only) when the binaries are not Fabric 2.5.
check_fabric_version() {
    local version
    version=$(FABRIC_CFG_PATH=$CONFIG_DIR peer version 2>/dev/null |
        sed -n 's/^ *Version: *v\{0,1\}\([0-9.]*\).*/\1/p' | head -n 1) || true
    case "$version" in
    2.5.*) ;;
    *) warn "peer reports version '${version:-unknown}'; this network is written for Fabric 2.5" ;;
    esac
}

# init_work_dir: create the work folder, or refuse one that this script did not create.
init_work_dir() {
    if [[ -d $WORK_DIR && ! -f $WORK_MARKER ]] && [[ -n $(ls -A "$WORK_DIR") ]]; then
        die "$WORK_DIR exists and was not made by network.sh; choose another FEDCHAIN_FABRIC_WORK"
    fi
    mkdir -p "$WORK_DIR"
    touch "$WORK_MARKER"
}

cmd_up() {
    require_fabric_bins peer orderer configtxgen osnadmin discover
    check_fabric_version
    require_bins node tar
    cmd_crypto
    record_ports
    start_nodes
    create_channel
    cmd_deploy
    write_tomls
    print_summary
}

cmd_crypto() {
    init_work_dir
    generate_crypto
}

cmd_deploy() {
    require_fabric_bins peer
    build_chaincode
    deploy_definition
    start_chaincode_server
    wait_chaincode_ready
    wait_endorsers
}

# cmd_start: (re)start what is not running (after `down`, or a node that died), nothing else.
cmd_start() {
    [[ -f $WORK_MARKER && -f $CC_DIR/package_id ]] || die "no network in $WORK_DIR: run 'up' first"
    require_fabric_bins peer orderer
    start_nodes
    start_chaincode_server
    wait_endorsers
}

cmd_define() {
    require_fabric_bins peer
    [[ -f $CC_DIR/package_id ]] || die "no chaincode deployed in $WORK_DIR: run 'up' first"
    define_names "$@"
    wait_endorsers "$@"
}

cmd_channel() {
    require_fabric_bins peer configtxgen osnadmin
    create_channel
}

cmd_down() {
    if [[ -d $RUN_DIR ]]; then
        stop_nodes
    fi
}

cmd_clean() {
    [[ -e $WORK_DIR ]] || return 0
    [[ -f $WORK_MARKER ]] || die "refusing to delete $WORK_DIR: it has no $(basename "$WORK_MARKER")"
    cmd_down
    log "deleting $WORK_DIR"
    rm -rf -- "$WORK_DIR"
}

cmd_env() {
    local org=${1:-$AGGREGATOR_ORG} var
    org_index "$org" >/dev/null
    use_org_admin "$org"
    for var in FABRIC_CFG_PATH CORE_PEER_LOCALMSPID CORE_PEER_MSPCONFIGPATH CORE_PEER_ADDRESS \
        CORE_PEER_TLS_ENABLED CORE_PEER_TLS_ROOTCERT_FILE; do
        printf 'export %s=%q\n' "$var" "${!var}"
    done
    printf 'export ORDERER_ADDRESS=%q ORDERER_CA=%q\n' "$(orderer_endpoint)" "$(orderer_tls_ca)"
}

print_summary() {
    cat >&2 <<EOF

The fedchain Fabric network is up: channel $CHANNEL, chaincode $CHAINCODE_NAME ($(package_id)).
fedchain.toml files are in $TOML_DIR; the aggregator's ledger section:

EOF
    ledger_section "$AGGREGATOR_ORG" "$PKI_DIR/$AGGREGATOR_ORG/users/aggregator"
    cat >&2 <<EOF

Train the demo on it (from the repository root):
  fedchain demo --ledger fabric --network $TOML_DIR

Or your own app (one terminal each):
  fedchain-server --config $TOML_DIR/aggregator.toml --min-nodes ${#ORG_LIST[@]}
$(for org in "${ORG_LIST[@]}"; do
        printf '  fedchain-client --config %s/%s.toml --exit-when-done\n' "$TOML_DIR" "$org"
    done)
Stop with: $0 down    (or clean, to delete everything)
EOF
}

main() {
    local command=${1:-}
    [[ -n $command ]] || usage
    shift
    case "$command" in
    up) cmd_up ;;
    down) cmd_down ;;
    clean) cmd_clean ;;
    crypto) cmd_crypto ;;
    channel) cmd_channel ;;
    deploy) cmd_deploy ;;
    start) cmd_start ;;
    define) cmd_define "$@" ;;
    env) cmd_env "$@" ;;
    toml)
        local org=${1:-$AGGREGATOR_ORG}
        local role=${2:-}
        if [[ -z $role ]]; then
            if [[ $org == "$AGGREGATOR_ORG" && -z ${1:-} ]]; then role=server; else role=client; fi
        fi
        fedchain_toml "$org" "$role"
        ;;
    status) print_status ;;
    -h | --help | help) usage ;;
    *)
        printf 'error: unknown command %s\n' "$command" >&2
        usage
        ;;
    esac
}

main "$@"
