# shellcheck shell=bash
# The fedchain chaincode as a service (ccaas): its package (metadata.json + code.tar.gz holding
# connection.json, no code), installed on every peer, approved by every organization and
# committed with the channel's MAJORITY endorsement; then (native mode) the chaincode server
# process from chaincode/. Every step checks first and skips what is done. Needs common.sh.

REPO_DIR=$(cd "$NETWORK_DIR/.." && pwd)
CC_PACKAGE=$CC_DIR/$CHAINCODE_NAME.tgz
# The flags naming the chaincode definition in every `peer lifecycle` call.
CC_DEFINITION=(--channelID "$CHANNEL" --name "$CHAINCODE_NAME" --version "$CHAINCODE_VERSION"
    --sequence "$CHAINCODE_SEQUENCE")

# package_chaincode: CC_PACKAGE (made once, so its package id never changes) and CC_DIR/package_id.
package_chaincode() {
    if [[ ! -f $CC_PACKAGE ]]; then
        log "packaging $CHAINCODE_LABEL as a service at $(chaincode_address)"
        local tmp
        tmp=$(mktemp -d "$CC_DIR.tmp.XXXXXX")
        printf '{"address": "%s", "dial_timeout": "10s", "tls_required": false}\n' \
            "$(chaincode_address)" >"$tmp/connection.json"
        printf '{"type": "ccaas", "label": "%s"}\n' "$CHAINCODE_LABEL" >"$tmp/metadata.json"
        tar -C "$tmp" -czf "$tmp/code.tar.gz" connection.json
        tar -C "$tmp" -czf "$tmp/package.tgz" metadata.json code.tar.gz
        mkdir -p "$CC_DIR"
        mv "$tmp/package.tgz" "$CC_PACKAGE"
        rm -rf "$tmp"
    fi
    use_org_admin "$AGGREGATOR_ORG"
    peer lifecycle chaincode calculatepackageid "$CC_PACKAGE" >"$CC_DIR/package_id.tmp" ||
        die "peer lifecycle chaincode calculatepackageid failed"
    mv "$CC_DIR/package_id.tmp" "$CC_DIR/package_id"
}

package_id() { cat "$CC_DIR/package_id"; }

install_chaincode() {
    local org id
    id=$(package_id)
    for org in "${ORG_LIST[@]}"; do
        use_org_admin "$org"
        if peer lifecycle chaincode queryinstalled --output json 2>/dev/null | grep -qF -- "$id"; then
            log "$(peer_id "$org") already has $id"
            continue
        fi
        log "installing $id on $(peer_id "$org")"
        peer lifecycle chaincode install "$CC_PACKAGE" >/dev/null 2>"$CC_DIR/install.log" ||
            die "install on $(peer_id "$org") failed: $(cat "$CC_DIR/install.log")"
    done
}

chaincode_committed() {
    use_org_admin "$AGGREGATOR_ORG"
    peer lifecycle chaincode querycommitted --channelID "$CHANNEL" --name "$CHAINCODE_NAME" \
        >/dev/null 2>&1
}

approve_chaincode() {
    local org
    for org in "${ORG_LIST[@]}"; do
        use_org_admin "$org"
        if peer lifecycle chaincode checkcommitreadiness "${CC_DEFINITION[@]}" --output json \
            2>/dev/null | grep -Eq "\"$org\":[[:space:]]*true"; then
            log "$org has already approved $CHAINCODE_NAME $CHAINCODE_VERSION"
            continue
        fi
        log "approving $CHAINCODE_NAME $CHAINCODE_VERSION for $org"
        # The orderer may still be electing its Raft leader just after joining the channel.
        retry 15 2 peer lifecycle chaincode approveformyorg -o "$(orderer_endpoint)" --tls \
            --cafile "$(orderer_tls_ca)" "${CC_DEFINITION[@]}" --package-id "$(package_id)" \
            >/dev/null || die "approveformyorg failed for $org"
    done
}

commit_chaincode() {
    local org peers=()
    for org in "${ORG_LIST[@]}"; do
        peers+=(--peerAddresses "$(peer_endpoint "$org")" --tlsRootCertFiles "$(org_tls_ca "$org")")
    done
    use_org_admin "$AGGREGATOR_ORG"
    log "committing $CHAINCODE_NAME $CHAINCODE_VERSION on $CHANNEL"
    retry 10 2 peer lifecycle chaincode commit -o "$(orderer_endpoint)" --tls \
        --cafile "$(orderer_tls_ca)" "${CC_DEFINITION[@]}" "${peers[@]}" >/dev/null ||
        die "committing the chaincode definition failed"
}

# deploy_definition: package, install, approve and commit (what needs no chaincode server).
deploy_definition() {
    mkdir -p "$CC_DIR"
    package_chaincode
    install_chaincode
    if chaincode_committed; then
        log "$CHAINCODE_NAME is already committed on $CHANNEL"
        return 0
    fi
    approve_chaincode
    commit_chaincode
}

# build_chaincode: chaincode/dist from the TypeScript sources (npm ci, npm run build) if absent.
build_chaincode() {
    local dir=$REPO_DIR/chaincode
    require_bins node
    if [[ ! -d $dir/node_modules ]]; then
        require_bins npm
        log "installing the chaincode's npm dependencies"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in $dir"
    fi
    if [[ ! -f $dir/dist/index.js ]]; then
        require_bins npm
        log "building the chaincode"
        (cd "$dir" && npm run build) || die "npm run build failed in $dir"
    fi
}

# start_chaincode_server: `fabric-chaincode-node server` serving every peer (native mode).
start_chaincode_server() {
    local id logfile=$LOG_DIR/chaincode.log
    id=$(package_id)
    if process_running chaincode fabric-chaincode-node &&
        [[ $(cat "$RUN_DIR/chaincode.id" 2>/dev/null) != "$id" ]]; then
        stop_process chaincode fabric-chaincode-node # it serves another package id
    fi
    start_process chaincode fabric-chaincode-node "$REPO_DIR/chaincode" "$logfile" \
        CORE_CHAINCODE_LOGGING_LEVEL="${CORE_CHAINCODE_LOGGING_LEVEL:-info}" \
        "$(command -v node)" node_modules/.bin/fabric-chaincode-node server \
        --chaincode-address="127.0.0.1:$CHAINCODE_PORT" --chaincode-id="$id"
    echo "$id" >"$RUN_DIR/chaincode.id"
    wait_for_port chaincode fabric-chaincode-node "$CHAINCODE_PORT" "$logfile"
}

# wait_chaincode_ready: every peer reaches the chaincode (an evaluation of `consortium`).
wait_chaincode_ready() {
    local org
    for org in "${ORG_LIST[@]}"; do
        use_org_admin "$org"
        retry 30 1 peer chaincode query -C "$CHANNEL" -n "$CHAINCODE_NAME" \
            -c '{"Args":["consortium"]}' >/dev/null ||
            die "$(peer_id "$org") cannot reach the chaincode; see $LOG_DIR/chaincode.log"
    done
    log "the chaincode answers on every peer"
}

# Discovery convergence. A peer's Gateway plans an endorsement from what its discovery service
# knows, and that knowledge comes from gossip: just after the peers join, or after one restarts,
# a peer may not yet know the others (membership formed 5-35 s after the joins in compose runs),
# and its Gateway refuses with FAILED_PRECONDITION "no peer combination can satisfy the
# endorsement policy". So bring-up is ready only once every organization's peer names every
# organization's peer as an endorser of the chaincode (Fabric's `discover` CLI, as that
# organization's admin, over TLS). Bounded by FEDCHAIN_FABRIC_CONVERGE_TIMEOUT (seconds, 120).

# first_file DIR: the first regular file in DIR (an MSP's signcerts/ or keystore/).
first_file() {
    local file
    for file in "$1"/*; do
        if [[ -f $file ]]; then
            echo "$file"
            return 0
        fi
    done
    return 1
}

# discover_endorsers ORG NAME: what ORG's peer's discovery service answers for the endorsers of
# chaincode NAME on the channel (JSON, or the error), asked as ORG's admin.
discover_endorsers() {
    local org=$1 name=$2 cert key
    use_org_admin "$org"
    cert=$(first_file "$CORE_PEER_MSPCONFIGPATH/signcerts") || die "no certificate in $CORE_PEER_MSPCONFIGPATH/signcerts"
    key=$(first_file "$CORE_PEER_MSPCONFIGPATH/keystore") || die "no key in $CORE_PEER_MSPCONFIGPATH/keystore"
    discover --peerTLSCA "$CORE_PEER_TLS_ROOTCERT_FILE" --userCert "$cert" --userKey "$key" \
        --MSP "$org" endorsers --channel "$CHANNEL" --chaincode "$name" \
        --server "$CORE_PEER_ADDRESS" 2>&1
}

# endorser_orgs OUTPUT: the MSP ids of the endorsers in a `discover endorsers` answer, sorted.
endorser_orgs() {
    sed -n 's/^[[:space:]]*"MSPID":[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$1" | sort -u | tr '\n' ' '
}

# now_ms: wall-clock milliseconds (for bounded waits and for reporting what a wait cost).
now_ms() { date +%s%3N; }

# wait_endorsers [NAME...]: until every organization's peer names every organization's peer as
# an endorser of each chaincode NAME (default: the network's chaincode); die naming the peer,
# the chaincode and the missing organizations when FEDCHAIN_FABRIC_CONVERGE_TIMEOUT runs out.
wait_endorsers() {
    local timeout=${FEDCHAIN_FABRIC_CONVERGE_TIMEOUT:-120} started deadline
    local names=("$@") name org want have answer member missing
    ((${#names[@]})) || names=("$CHAINCODE_NAME")
    [[ $timeout =~ ^[0-9]+$ ]] ||
        die "FEDCHAIN_FABRIC_CONVERGE_TIMEOUT must be a number of seconds, not '$timeout'"
    require_fabric_bins discover
    started=$(now_ms)
    deadline=$((started + timeout * 1000))
    want=$(printf '%s\n' "${ORG_LIST[@]}" | sort -u | tr '\n' ' ')
    for name in "${names[@]}"; do
        for org in "${ORG_LIST[@]}"; do
            while :; do
                answer=$(discover_endorsers "$org" "$name") || true
                have=$(endorser_orgs "$answer")
                [[ $have == "$want" ]] && break
                if (($(now_ms) >= deadline)); then
                    missing=""
                    for member in "${ORG_LIST[@]}"; do
                        [[ " $have" == *" $member "* ]] || missing+="$(peer_id "$member") "
                    done
                    die "the network did not converge within $timeout s: discovery on" \
                        "$(peer_id "$org") does not name ${missing% } as an endorser of chaincode" \
                        "$name on channel $CHANNEL (it names the peers of: ${have:-no organization};" \
                        "its last answer: $(tail -n 1 <<<"$answer")). Check that each of them runs," \
                        "has joined $CHANNEL and has the chaincode installed, and that the peers" \
                        "reach each other's gossip endpoints (CORE_PEER_GOSSIP_EXTERNALENDPOINT, the" \
                        "anchor peers in configtx.yaml); see the peers' logs." \
                        "FEDCHAIN_FABRIC_CONVERGE_TIMEOUT sets the wait."
                fi
                sleep 0.5
            done
        done
    done
    local took
    took=$(($(now_ms) - started))
    log "discovery: every peer names the peers of all ${#ORG_LIST[@]} organizations as endorsers" \
        "of ${names[*]} (waited $((took / 1000)).$(printf '%03d' $((took % 1000))) s)"
}

# define_names NAME...: the chaincode definition, with the deployed package, committed under
# each new NAME as well: every name is its own namespace (an empty world state) served by the
# same chaincode server. For tests that need an empty ledger on a running network; the
# approvals of all names and organizations, then the commits, run concurrently.
define_names() {
    local name org pid failed=0 peers=() pids=()
    local logs=$CC_DIR/define.$$
    (($#)) || die "define needs at least one chaincode name"
    for name in "$@"; do
        [[ $name =~ ^[a-z0-9][a-z0-9_-]{0,63}$ ]] || die "'$name' is not a chaincode name"
    done
    mkdir -p "$logs"
    for org in "${ORG_LIST[@]}"; do
        peers+=(--peerAddresses "$(peer_endpoint "$org")" --tlsRootCertFiles "$(org_tls_ca "$org")")
        for name in "$@"; do
            (
                use_org_admin "$org"
                retry 15 1 peer lifecycle chaincode approveformyorg -o "$(orderer_endpoint)" --tls \
                    --cafile "$(orderer_tls_ca)" --channelID "$CHANNEL" --name "$name" \
                    --version "$CHAINCODE_VERSION" --sequence 1 --package-id "$(package_id)"
            ) >"$logs/approve.$org.$name.log" 2>&1 &
            pids+=($!)
        done
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    ((failed == 0)) || die "approving failed: $(tail -n 3 "$logs"/approve.* | tail -n 20)"
    pids=()
    for name in "$@"; do
        (
            use_org_admin "$AGGREGATOR_ORG"
            retry 10 1 peer lifecycle chaincode commit -o "$(orderer_endpoint)" --tls \
                --cafile "$(orderer_tls_ca)" --channelID "$CHANNEL" --name "$name" \
                --version "$CHAINCODE_VERSION" --sequence 1 "${peers[@]}"
        ) >"$logs/commit.$name.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    ((failed == 0)) || die "committing failed: $(tail -n 3 "$logs"/commit.* | tail -n 20)"
    rm -rf "$logs"
    log "defined $* on $CHANNEL"
}
