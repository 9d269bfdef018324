# shellcheck shell=bash
# Crypto material from fedchain's own PKI: the organizations' CAs and members
# (`fedchain pki init`), then the Fabric nodes issued by the same CAs
# (`fedchain pki fabric-nodes`). Both steps keep what already exists. Needs common.sh.

# fedchain_cli ARGS...: the fedchain command (on PATH, or the installed Python package).
fedchain_cli() {
    if command -v fedchain >/dev/null 2>&1; then
        fedchain "$@"
    elif command -v python3 >/dev/null 2>&1 && python3 -c 'import fedchain' 2>/dev/null; then
        python3 -m fedchain.cli.main "$@"
    else
        die "the fedchain command is needed to generate the crypto material: pip install -e '.[fabric]'"
    fi
}

# generate_crypto: PKI_DIR (orgs, aggregator identity) and CRYPTO_DIR (nodes).
# FEDCHAIN_AGGREGATOR_HOSTS adds host names to the aggregator's TLS certificate.
generate_crypto() {
    if [[ -f $PKI_DIR/consortium.json ]]; then
        log "keeping the consortium PKI in $PKI_DIR"
    else
        log "creating the consortium PKI ($ORGS, aggregator $AGGREGATOR_ORG) in $PKI_DIR"
        local hosts=()
        if [[ -n ${FEDCHAIN_AGGREGATOR_HOSTS:-} ]]; then
            hosts=(--hosts "$FEDCHAIN_AGGREGATOR_HOSTS")
        fi
        fedchain_cli pki init --consortium "$CONSORTIUM" --orgs "${ORGS// /,}" \
            --aggregator "$AGGREGATOR_ORG" ${hosts[@]+"${hosts[@]}"} --out "$PKI_DIR" >/dev/null
    fi
    log "issuing peer and orderer identities in $CRYPTO_DIR"
    fedchain_cli pki fabric-nodes --pki "$PKI_DIR" --out "$CRYPTO_DIR" \
        --orderer-org "$ORDERER_ORG" --peer "$PEER_NAME" --orderer "$ORDERER_NAME" >/dev/null
}
