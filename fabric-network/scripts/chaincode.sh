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
