# shellcheck shell=bash
# The orderer, the peers and the chaincode server as plain local processes on 127.0.0.1 (native
# mode): started in the background with a clean environment, one PID file and one log each,
# stopped by PID. Needs common.sh.

# The variables of a node's environment, filled by orderer_env / peer_env.
ENV_VARS=()

# process_running NAME MATCH: NAME's PID file names a live process whose command line has MATCH
# (so a PID reused by another program is never mistaken for ours).
process_running() {
    local pidfile=$RUN_DIR/$1.pid pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    ps -p "$pid" -o args= 2>/dev/null | grep -qF -- "$2"
}

# start_process NAME MATCH DIR LOG VAR=VALUE... PROGRAM ARGS...: run PROGRAM in DIR with only
# PATH, HOME and the given variables, detached from this shell; skip it if already running.
start_process() {
    local name=$1 match=$2 dir=$3 logfile=$4
    shift 4
    if process_running "$name" "$match"; then
        log "$name is already running (pid $(<"$RUN_DIR/$name.pid"))"
        return 0
    fi
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    local launcher=nohup
    if command -v setsid >/dev/null 2>&1; then launcher=setsid; fi
    (cd "$dir" && exec "$launcher" env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$@" </dev/null >>"$logfile" 2>&1) &
    echo "$!" >"$RUN_DIR/$name.pid"
    log "started $name (pid $!, log $logfile)"
}

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
    kill -0 "$1" 2>/dev/null && [[ $(ps -p "$1" -o stat= 2>/dev/null) != Z* ]]
}

# stop_process NAME MATCH: SIGTERM, then SIGKILL after 10 s; forget the PID file.
stop_process() {
    local name=$1 pidfile=$RUN_DIR/$1.pid pid i
    if ! process_running "$name" "$2"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(<"$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.2
    done
    if alive "$pid"; then
        warn "$name did not stop within 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

# wait_for_port NAME MATCH PORT LOG: until 127.0.0.1:PORT accepts connections (60 s at most);
# if the process dies first, show the end of its log. Whether it died is asked of its PID,
# not of its command line (MATCH): until the launcher has exec'd the program, the command line
# is the launcher's, and a process caught there was taken for dead with an empty log.
wait_for_port() {
    local name=$1 port=$3 logfile=$4 pid i
    pid=$(<"$RUN_DIR/$name.pid")
    for ((i = 0; i < 300; i++)); do
        if ! alive "$pid"; then
            tail -n 30 "$logfile" >&2 || true
            die "$name exited during start-up; its log is $logfile"
        fi
        if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    die "$name does not listen on 127.0.0.1:$port after 60 s; see $logfile"
}

orderer_env() {
    local od data
    od=$(orderer_dir)
    data=$DATA_DIR/$ORDERER_NAME.$ORDERER_ORG
    ENV_VARS=(
        FABRIC_CFG_PATH="$CONFIG_DIR"
        FABRIC_LOGGING_SPEC="${FABRIC_LOGGING_SPEC:-info}"
        ORDERER_GENERAL_LISTENADDRESS=127.0.0.1
        ORDERER_GENERAL_LISTENPORT="$ORDERER_PORT"
        ORDERER_GENERAL_LOCALMSPID="$ORDERER_ORG"
        ORDERER_GENERAL_LOCALMSPDIR="$od/msp"
        ORDERER_GENERAL_TLS_CERTIFICATE="$od/tls/server.crt"
        ORDERER_GENERAL_TLS_PRIVATEKEY="$od/tls/server.key"
        ORDERER_GENERAL_TLS_ROOTCAS="[$od/tls/ca.crt]"
        ORDERER_GENERAL_TLS_CLIENTROOTCAS="[$od/tls/ca.crt]"
        ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE="$od/tls/server.crt"
        ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY="$od/tls/server.key"
        ORDERER_FILELEDGER_LOCATION="$data/ledger"
        ORDERER_CONSENSUS_WALDIR="$data/etcdraft/wal"
        ORDERER_CONSENSUS_SNAPDIR="$data/etcdraft/snapshot"
        ORDERER_OPERATIONS_LISTENADDRESS="127.0.0.1:$ORDERER_OPERATIONS_PORT"
        ORDERER_ADMIN_LISTENADDRESS="127.0.0.1:$ORDERER_ADMIN_PORT"
        ORDERER_ADMIN_TLS_CERTIFICATE="$od/tls/server.crt"
        ORDERER_ADMIN_TLS_PRIVATEKEY="$od/tls/server.key"
        ORDERER_ADMIN_TLS_ROOTCAS="[$od/tls/ca.crt]"
        ORDERER_ADMIN_TLS_CLIENTROOTCAS="[$(orderer_admin_tls_dir)/ca.crt]"
    )
}

# ccaas_builder_dir: the external builder the peers use. FEDCHAIN_CCAAS_BUILDER is "fedchain"
# (this repository's scripts, the default), "fabric" (the ccaas builder shipped with Fabric's
# binaries, next to their bin/ folder) or a builder folder (holding bin/detect, build, release).
ccaas_builder_dir() {
    local choice=${FEDCHAIN_CCAAS_BUILDER:-fedchain} candidate
    case "$choice" in
    fedchain) echo "$NETWORK_DIR/builders/ccaas" ;;
    fabric)
        for candidate in "$(dirname "$(command -v peer)")/../builders/ccaas" \
            "${FABRIC_CFG_PATH:-/nonexistent}/../builders/ccaas"; do
            if [[ -x $candidate/bin/detect ]]; then
                (cd "$candidate" && pwd)
                return 0
            fi
        done
        die "FEDCHAIN_CCAAS_BUILDER=fabric, but no builders/ccaas/bin/detect next to the Fabric binaries"
        ;;
    *)
        [[ -x $choice/bin/detect ]] || die "FEDCHAIN_CCAAS_BUILDER=$choice has no executable bin/detect"
        (cd "$choice" && pwd)
        ;;
    esac
}

peer_env() {
    local org=$1 pd data port builder
    pd=$(peer_dir "$org")
    data=$DATA_DIR/$(peer_id "$org")
    port=$(peer_port "$org")
    builder=$(ccaas_builder_dir)
    ENV_VARS=(
        FABRIC_CFG_PATH="$CONFIG_DIR"
        FABRIC_LOGGING_SPEC="${FABRIC_LOGGING_SPEC:-info}"
        CORE_PEER_ID="$(peer_id "$org")"
        CORE_PEER_LOCALMSPID="$org"
        CORE_PEER_MSPCONFIGPATH="$pd/msp"
        CORE_PEER_LISTENADDRESS="127.0.0.1:$port"
        CORE_PEER_ADDRESS="127.0.0.1:$port"
        CORE_PEER_CHAINCODELISTENADDRESS="127.0.0.1:$(peer_chaincode_port "$org")"
        CORE_PEER_CHAINCODEADDRESS="127.0.0.1:$(peer_chaincode_port "$org")"
        CORE_PEER_GOSSIP_BOOTSTRAP="127.0.0.1:$port"
        CORE_PEER_GOSSIP_EXTERNALENDPOINT="127.0.0.1:$port"
        CORE_PEER_TLS_ENABLED=true
        CORE_PEER_TLS_CERT_FILE="$pd/tls/server.crt"
        CORE_PEER_TLS_KEY_FILE="$pd/tls/server.key"
        CORE_PEER_TLS_ROOTCERT_FILE="$pd/tls/ca.crt"
        CORE_PEER_FILESYSTEMPATH="$data"
        CORE_LEDGER_SNAPSHOTS_ROOTDIR="$data/snapshots"
        CORE_OPERATIONS_LISTENADDRESS="127.0.0.1:$(peer_operations_port "$org")"
        CORE_CHAINCODE_EXTERNALBUILDERS="[{name: ccaas, path: \"$builder\"}]"
    )
}

start_orderer() {
    local name=$ORDERER_NAME.$ORDERER_ORG logfile=$LOG_DIR/$ORDERER_NAME.$ORDERER_ORG.log
    mkdir -p "$DATA_DIR/$name"
    orderer_env
    start_process "$name" "orderer" "$WORK_DIR" "$logfile" "${ENV_VARS[@]}" \
        "$(command -v orderer)" start
    wait_for_port "$name" "orderer" "$ORDERER_ADMIN_PORT" "$logfile"
}

start_peer() {
    local org=$1 name logfile
    name=$(peer_id "$org")
    logfile=$LOG_DIR/$name.log
    mkdir -p "$DATA_DIR/$name"
    peer_env "$org"
    start_process "$name" "peer node start" "$WORK_DIR" "$logfile" "${ENV_VARS[@]}" \
        "$(command -v peer)" node start
    wait_for_port "$name" "peer node start" "$(peer_port "$org")" "$logfile"
}

start_nodes() {
    local org
    start_orderer
    for org in "${ORG_LIST[@]}"; do
        start_peer "$org"
    done
}

stop_nodes() {
    local org
    stop_process chaincode fabric-chaincode-node
    for org in "${ORG_LIST[@]}"; do
        stop_process "$(peer_id "$org")" "peer node start"
    done
    stop_process "$ORDERER_NAME.$ORDERER_ORG" "orderer"
}

# print_status: every process of the network and whether it runs.
print_status() {
    local org name
    for name in "$ORDERER_NAME.$ORDERER_ORG:orderer" chaincode:fabric-chaincode-node; do
        report_process "${name%%:*}" "${name#*:}"
    done
    for org in "${ORG_LIST[@]}"; do
        report_process "$(peer_id "$org")" "peer node start"
    done
}

report_process() {
    if process_running "$1" "$2"; then
        printf '%-24s running (pid %s)\n' "$1" "$(<"$RUN_DIR/$1.pid")"
    else
        printf '%-24s stopped\n' "$1"
    fi
}
