# shellcheck shell=bash
# fedchain.toml files for the running network: the aggregator's and one per organization's
# client, each signing ledger transactions with the same identity it uses for mTLS (its MSP id
# is its organization id). Needs common.sh.

# toml_string VALUE: VALUE as a TOML basic string.
toml_string() {
    local value=${1//\\/\\\\}
    printf '"%s"' "${value//\"/\\\"}"
}

# ledger_section ORG IDENTITY_DIR: the [ledger] and [ledger.fabric] tables for ORG's peer.
ledger_section() {
    local org=$1 identity=$2
    cat <<EOF
[ledger]
backend = "fabric"

[ledger.fabric]
endpoint = $(toml_string "$(peer_endpoint "$org")")
tls_ca = $(toml_string "$(org_tls_ca "$org")")
channel = $(toml_string "$CHANNEL")
chaincode = $(toml_string "$CHAINCODE_NAME")
msp_id = $(toml_string "$org")
identity = $(toml_string "$identity/msp")
EOF
}

# fedchain_toml ORG server|client: a whole fedchain.toml for ORG's aggregator or client.
fedchain_toml() {
    local org=$1 role=$2 member identity
    org_index "$org" >/dev/null
    case "$role" in
    server)
        [[ $org == "$AGGREGATOR_ORG" ]] || die "only $AGGREGATOR_ORG runs the aggregator"
        member=aggregator
        ;;
    client) member=client1 ;;
    *) die "role must be 'server' or 'client', not '$role'" ;;
    esac
    identity=$PKI_DIR/$org/users/$member
    printf '# fedchain.toml: the %s of %s on the local Fabric network (fabric-network/network.sh)\n\n' \
        "$role" "$org"
    printf '[organization]\nid = %s\npki = %s\nidentity = %s\n\n' "$(toml_string "$org")" \
        "$(toml_string "$PKI_DIR")" "$(toml_string "$identity")"
    ledger_section "$org" "$identity"
    if [[ $role == server ]]; then
        printf '\n[server]\naddress = "127.0.0.1:%s"\n' "$AGGREGATOR_PORT"
    else
        printf '\n[client]\nserver = "127.0.0.1:%s"\n' "$AGGREGATOR_PORT"
    fi
}

# write_tomls: TOML_DIR/aggregator.toml and TOML_DIR/<org>.toml.
write_tomls() {
    local org
    mkdir -p "$TOML_DIR"
    fedchain_toml "$AGGREGATOR_ORG" server >"$TOML_DIR/aggregator.toml"
    for org in "${ORG_LIST[@]}"; do
        fedchain_toml "$org" client >"$TOML_DIR/$org.toml"
    done
}
