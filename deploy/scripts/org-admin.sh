#!/usr/bin/env bash
# An organization's admin, in its own project's "admin" container (fabric-tools image): the peer
# CLI acting as ORG's admin (its own MSP, /org/pki/ORG/users/admin) on ORG's own peer. Steps:
#   wait      until the peer answers
#   join      join the peer to CHANNEL with the published genesis block
#   install   install the published ccaas package; its package id -> /org/state/package_id
#   approve   approveformyorg (this organization's approval of the chaincode definition)
#   commit    commit the definition (once a majority approved; endorsed by PEER_ADDRESSES:
#             host:port=tls-ca-file,... of the organizations' peers, public TLS CAs)
#   ready     until the chaincode answers on this peer and discovery knows every ORGS peer
# Every step checks first and skips what is done.
set -euo pipefail
# shellcheck source=lib.sh
source /deploy/scripts/lib.sh

: "${ORG:?}" "${PEER_ADDRESS:?}" "${ORDERER_ADDRESS:?}" "${CHANNEL:?}" "${CHAINCODE:?}"
WAIT_S=${WAIT_S:-120}
ADMIN=/org/pki/$ORG/users/admin
PACKAGE=/public/chaincode/$CHAINCODE.tgz
BLOCK=/public/channel/$CHANNEL.block
ORDERER_CA=/public/ordererorg/msp/tlscacerts/ca.pem
export CORE_PEER_LOCALMSPID=$ORG CORE_PEER_MSPCONFIGPATH=$ADMIN/msp CORE_PEER_ADDRESS=$PEER_ADDRESS
export CORE_PEER_TLS_ENABLED=true CORE_PEER_TLS_ROOTCERT_FILE=/org/pki/$ORG/msp/tlscacerts/ca.pem
DEFINITION=(--channelID "$CHANNEL" --name "$CHAINCODE" --version "$CHAINCODE_VERSION"
    --sequence "$CHAINCODE_SEQUENCE")
ORDERER=(-o "$ORDERER_ADDRESS" --tls --cafile "$ORDERER_CA")

in_channel() { peer channel list 2>/dev/null | grep -qx -- "$CHANNEL"; }
committed() { peer lifecycle chaincode querycommitted --channelID "$CHANNEL" --name "$CHAINCODE" >/dev/null 2>&1; }

# every_org_discovered: discovery on this peer lists a peer of every organization in ORGS.
every_org_discovered() {
    local out org
    out=$(discover --peerTLSCA "$CORE_PEER_TLS_ROOTCERT_FILE" --userKey "$ADMIN/msp/keystore/key.pem" \
        --userCert "$ADMIN/msp/signcerts/cert.pem" --MSP "$ORG" peers --channel "$CHANNEL" \
        --server "$PEER_ADDRESS") || return 1
    for org in ${ORGS//,/ }; do
        grep -q "\"MSPID\": \"$org\"" <<<"$out" || { echo "discovery does not list $org yet"; return 1; }
    done
}

step=${1:-}
case "$step" in
wait)
    wait_for "$WAIT_S" "$ORG's peer at $PEER_ADDRESS" peer channel list >/dev/null
    ;;
join)
    if in_channel; then
        log "$PEER_ADDRESS has already joined $CHANNEL"
    else
        log "$ORG's admin joins $PEER_ADDRESS to $CHANNEL"
        wait_for "$WAIT_S" "$PEER_ADDRESS to join $CHANNEL" peer channel join -b "$BLOCK" >/dev/null
    fi
    ;;
install)
    id=$(peer lifecycle chaincode calculatepackageid "$PACKAGE")
    if peer lifecycle chaincode queryinstalled --output json | grep -qF -- "$id"; then
        log "$PEER_ADDRESS already has $id"
    else
        log "$ORG's admin installs $id on $PEER_ADDRESS"
        out=$(peer lifecycle chaincode install "$PACKAGE" 2>&1) || die "install failed: $out"
    fi
    printf '%s\n' "$id" >/org/state/package_id
    ;;
approve)
    if peer lifecycle chaincode checkcommitreadiness "${DEFINITION[@]}" --output json 2>/dev/null |
        grep -Eq "\"$ORG\":[[:space:]]*true"; then
        log "$ORG has already approved $CHAINCODE $CHAINCODE_VERSION"
    else
        log "$ORG's admin approves $CHAINCODE $CHAINCODE_VERSION"
        # the orderer may still be electing its Raft leader just after joining the channel
        wait_for "$WAIT_S" "$ORG's approval" peer lifecycle chaincode approveformyorg \
            "${ORDERER[@]}" "${DEFINITION[@]}" --package-id "$(cat /org/state/package_id)" >/dev/null
    fi
    ;;
commit)
    if committed; then
        log "$CHAINCODE is already committed on $CHANNEL"
        exit 0
    fi
    peers=()
    IFS=, read -r -a pairs <<<"${PEER_ADDRESSES:?}"
    for pair in "${pairs[@]}"; do
        peers+=(--peerAddresses "${pair%%=*}" --tlsRootCertFiles "${pair#*=}")
    done
    log "$ORG's admin commits $CHAINCODE $CHAINCODE_VERSION on $CHANNEL"
    wait_for "$WAIT_S" "the commit of $CHAINCODE" peer lifecycle chaincode commit "${ORDERER[@]}" \
        "${DEFINITION[@]}" "${peers[@]}" >/dev/null
    ;;
ready)
    wait_for "$WAIT_S" "$CHAINCODE to answer on $PEER_ADDRESS" peer chaincode query \
        -C "$CHANNEL" -n "$CHAINCODE" -c '{"Args":["consortium"]}' >/dev/null
    wait_for "$WAIT_S" "discovery on $PEER_ADDRESS to list every organization" every_org_discovered \
        >/dev/null
    log "$PEER_ADDRESS: $CHAINCODE answers, discovery lists ${ORGS//,/ }"
    ;;
*) die "usage: org-admin.sh wait|join|install|approve|commit|ready" ;;
esac
