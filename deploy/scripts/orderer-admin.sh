#!/usr/bin/env bash
# The orderer organization's admin, in its project's "admin" container (fabric-tools image).
#   wait      until the orderer's admin endpoint answers (mutual TLS, this admin's certificate)
#   genesis   the channel's genesis block from /channel/configtx.yaml (the members' public MSPs)
#   join      osnadmin channel join of the orderer
set -euo pipefail
# shellcheck source=lib.sh
source /deploy/scripts/lib.sh

: "${CHANNEL:?}" "${ORDERER_ADMIN_ADDRESS:?}"
WAIT_S=${WAIT_S:-120}
BLOCK=/channel/$CHANNEL.block

osnadmin_call() {
    osnadmin "$@" -o "$ORDERER_ADMIN_ADDRESS" --ca-file /admin/tls/ca.crt \
        --client-cert /admin/tls/client.crt --client-key /admin/tls/client.key
}

case "${1:-}" in
wait)
    wait_for "$WAIT_S" "the orderer's admin endpoint $ORDERER_ADMIN_ADDRESS" osnadmin_call channel list \
        >/dev/null
    ;;
genesis)
    if [[ -f $BLOCK ]]; then
        log "keeping the genesis block $BLOCK"
    else
        log "creating the genesis block of $CHANNEL"
        configtxgen -configPath /channel -profile FedchainDeploy -channelID "$CHANNEL" \
            -outputBlock "$BLOCK.tmp" 2>/channel/configtxgen.log ||
            die "configtxgen failed: $(tail -n 5 /channel/configtxgen.log)"
        mv "$BLOCK.tmp" "$BLOCK"
    fi
    ;;
join)
    if osnadmin_call channel list --channelID "$CHANNEL" | grep -q '^Status: 200'; then
        log "the orderer has already joined $CHANNEL"
    else
        log "the orderer organization's admin joins the orderer to $CHANNEL"
        out=$(osnadmin_call channel join --channelID "$CHANNEL" --config-block "$BLOCK")
        grep -q '^Status: 201' <<<"$out" || die "osnadmin channel join refused: $out"
    fi
    ;;
*) die "usage: orderer-admin.sh wait|genesis|join" ;;
esac
