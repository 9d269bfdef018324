# shellcheck shell=bash
# The channel: its genesis block (configtxgen), the orderer joining it through the channel
# participation API (osnadmin) and every organization's peer joining it (peer channel join).
# Each step checks first and skips what is done. Needs common.sh; the nodes must be running.

# create_genesis_block: CHANNEL_DIR/<channel>.block from configtx.yaml (made once: the channel
# is defined by its first block, so a changed configtx.yaml needs a new network).
create_genesis_block() {
    local block=$CHANNEL_DIR/$CHANNEL.block
    if [[ -f $block ]]; then
        log "keeping the genesis block $block"
        return 0
    fi
    mkdir -p "$CHANNEL_DIR"
    # configtx.yaml resolves MSPDir and TLS certificate paths against its own folder.
    if [[ $NETWORK_MODE == native ]]; then
        native_configtx "$NETWORK_DIR/configtx.yaml" "$WORK_DIR/configtx.yaml"
    else
        cp "$NETWORK_DIR/configtx.yaml" "$WORK_DIR/configtx.yaml"
    fi
    log "creating the genesis block of channel $CHANNEL (profile $(configtx_profile))"
    configtxgen -configPath "$WORK_DIR" -profile "$(configtx_profile)" -channelID "$CHANNEL" \
        -outputBlock "$block.tmp" >"$WORK_DIR/configtxgen.log" 2>&1 ||
        die "configtxgen failed; see $WORK_DIR/configtxgen.log"
    mv "$block.tmp" "$block"
}

# osnadmin_call ARGS...: osnadmin against the orderer's admin endpoint with mutual TLS.
osnadmin_call() {
    local tls
    tls=$(orderer_admin_tls_dir)
    osnadmin "$@" -o "$(orderer_admin_endpoint)" --ca-file "$(orderer_tls_ca)" \
        --client-cert "$tls/client.crt" --client-key "$tls/client.key"
}

orderer_join_channel() {
    local output
    output=$(osnadmin_call channel list --channelID "$CHANNEL") ||
        die "osnadmin cannot reach the orderer at $(orderer_admin_endpoint): $output"
    if grep -q '^Status: 200' <<<"$output"; then
        log "the orderer has already joined $CHANNEL"
        return 0
    fi
    log "joining the orderer to $CHANNEL"
    output=$(osnadmin_call channel join --channelID "$CHANNEL" \
        --config-block "$CHANNEL_DIR/$CHANNEL.block") || die "osnadmin channel join failed: $output"
    grep -q '^Status: 201' <<<"$output" || die "osnadmin channel join refused: $output"
}

peer_in_channel() {
    peer channel list 2>/dev/null | grep -qx -- "$CHANNEL"
}

peers_join_channel() {
    local org
    for org in "${ORG_LIST[@]}"; do
        use_org_admin "$org"
        if peer_in_channel; then
            log "$(peer_id "$org") has already joined $CHANNEL"
            continue
        fi
        log "joining $(peer_id "$org") to $CHANNEL"
        retry 10 1 peer channel join -b "$CHANNEL_DIR/$CHANNEL.block" >/dev/null ||
            die "$(peer_id "$org") could not join $CHANNEL"
    done
}

create_channel() {
    create_genesis_block
    orderer_join_channel
    peers_join_channel
}
