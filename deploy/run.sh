#!/usr/bin/env bash
# The per-organization deployment of fedchain on Hyperledger Fabric, on this machine as separate
# hosts: one compose project per organization (fc-org1, fc-org2, fc-org3: peer, chaincode
# server, client, admin), one for the orderer organization (fc-ordererorg) and one for the
# aggregator (fc-aggregator), joined only by one Docker network standing in for the internet
# (FC_INTERNET) and reaching each other by their configured DNS names (deploy/env/*.env).
#
# Usage: deploy/run.sh STEP...      (steps run in the order given; each prints its time)
#   build      the fedchain and chaincode images (the Fabric images must exist already)
#   ceremony   the key ceremony: each party's keys made in its own folder (deploy/.work/<party>,
#              by a throwaway container that mounts only that folder and the public one, with
#              no network); only bundles, fingerprints, the definition and public MSPs are
#              exchanged (deploy/.work/public)
#   up         the internet network, the orderer, the genesis block, the peers and their channel
#              joins, chaincode install / approve per organization, the commit, and a wait until
#              every peer answers and its discovery lists every organization
#   train      the aggregator and one client per organization, until all exit (ROUNDS rounds)
#   audit      as AUDITOR (default org2): `fedchain audit` of the channel and the model files
#              the aggregator published
#   down       remove the containers, volumes and network; keep the keys (`down --purge`:
#              delete deploy/.work too)
#   all        build ceremony up train audit
# Environment: DEPLOY_WORK (default deploy/.work), DEPLOY_ENV_DIR (default deploy/env),
# FC_INTERNET and FC_PROJECT_PREFIX (override env/network.env),
# AUDITOR, WAIT_S (each bounded wait, default 120), TRAIN_S (default 600).
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$DEPLOY_DIR/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$DEPLOY_DIR/scripts/lib.sh"

ENV_DIR=${DEPLOY_ENV_DIR:-$DEPLOY_DIR/env}
DEPLOY_WORK=${DEPLOY_WORK:-$DEPLOY_DIR/.work}
PUBLIC=$DEPLOY_WORK/public
HOST_UID=$(id -u)
HOST_GID=$(id -g)
WAIT_S=${WAIT_S:-120}
TRAIN_S=${TRAIN_S:-600}
AUDITOR=${AUDITOR:-org2}
# What the compose files read from the environment besides the env files.
export DEPLOY_WORK HOST_UID HOST_GID WAIT_S

# env_get FILE KEY: KEY's value in a KEY=VALUE file (the last one).
env_get() {
    local value
    [[ -f $1 ]] || die "missing $1"
    value=$(sed -n "s/^$2=//p" "$1" | tail -n 1)
    [[ -n $value ]] || die "$1 does not set $2"
    printf '%s' "$value"
}

NET_ENV=$ENV_DIR/network.env
# These two may come from the environment too (a test's own network and project names).
FC_INTERNET=${FC_INTERNET:-$(env_get "$NET_ENV" FC_INTERNET)}
FC_PROJECT_PREFIX=${FC_PROJECT_PREFIX:-$(env_get "$NET_ENV" FC_PROJECT_PREFIX)}
PREFIX=$FC_PROJECT_PREFIX
export FC_INTERNET FC_PROJECT_PREFIX
CONSORTIUM=$(env_get "$NET_ENV" CONSORTIUM)
CHANNEL=$(env_get "$NET_ENV" CHANNEL)
CHAINCODE=$(env_get "$NET_ENV" CHAINCODE)
CHAINCODE_LABEL=$(env_get "$NET_ENV" CHAINCODE_LABEL)
read -r -a ORG_LIST <<<"$(env_get "$NET_ENV" ORGS | tr , ' ')"
ORDERER_ORG=$(env_get "$ENV_DIR/ordererorg.env" ORDERER_ORG)
ORDERER_HOST=$(env_get "$ENV_DIR/ordererorg.env" ORDERER_HOST)
ORDERER_PORT=$(env_get "$ENV_DIR/ordererorg.env" ORDERER_PORT)
AGG_ORG=$(env_get "$ENV_DIR/aggregator.env" AGGREGATOR_ORG)
AGG_HOST=$(env_get "$ENV_DIR/aggregator.env" AGGREGATOR_HOST)
AGG_PORT=$(env_get "$ENV_DIR/aggregator.env" AGGREGATOR_PORT)
[[ " ${ORG_LIST[*]} " == *" $AGG_ORG "* ]] || die "AGGREGATOR_ORG $AGG_ORG is not in ORGS"

peer_host() { env_get "$ENV_DIR/$1.env" PEER_HOST; }
peer_address() { echo "$(peer_host "$1"):$(env_get "$ENV_DIR/$1.env" PEER_PORT)"; }

# project PARTY ARGS...: docker compose on PARTY's own project (an organization, ordererorg or
# aggregator), with the public directory and PARTY's own env file.
project() {
    local party=$1 file envs=(--env-file "$NET_ENV")
    shift
    case "$party" in
    "$ORDERER_ORG") file=orderer.yaml envs+=(--env-file "$ENV_DIR/ordererorg.env") ;;
    aggregator) file=aggregator.yaml envs+=(--env-file "$ENV_DIR/aggregator.env") ;;
    *) file=org.yaml envs+=(--env-file "$ENV_DIR/ordererorg.env" --env-file "$ENV_DIR/$party.env") ;;
    esac
    docker compose -p "$PREFIX$party" -f "$DEPLOY_DIR/compose/$file" "${envs[@]}" "$@"
}

# admin ORG STEP: ORG's own admin (deploy/scripts/org-admin.sh STEP) in ORG's own project.
admin() {
    local org=$1
    shift
    project "$org" run --rm --no-deps -T admin "$@"
}

# fedchain_at PARTY PUBLIC_MODE ARGS...: the fedchain CLI on PARTY's machine: a throwaway
# container with no network that mounts PARTY's folder and the public folder (ro or rw) only.
fedchain_at() {
    local party=$1 mode=$2
    shift 2
    docker run --rm --network none -u "$HOST_UID:$HOST_GID" -e HOME=/tmp -e COLUMNS=200 \
        -v "$DEPLOY_WORK/$party:/org" -v "$PUBLIC:/public:$mode" -w /org fedchain:local "$@"
}

# parallel FUNCTION ARGS...: FUNCTION ORG ARGS... for every organization at once (as separate
# organizations would); fails if any fails, after all have ended.
parallel() {
    local fn=$1 org pid failed=0 pids=()
    shift
    for org in "${ORG_LIST[@]}"; do
        "$fn" "$org" "$@" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    ((failed == 0)) || die "$fn failed for at least one organization (see above)"
}

# publish SRC DEST: copy a public folder (an MSP) to DEST, refusing anything that is a key.
publish() {
    if find "$1" \( -name '*.key' -o -name 'key.pem' -o -name '*_sk' -o -name keystore \) | grep -q .; then
        die "$1 holds private keys; refusing to publish it"
    fi
    rm -rf "$2"
    mkdir -p "$(dirname "$2")"
    cp -R "$1" "$2"
}

# quietly COMMAND...: run COMMAND, showing its output only if it fails.
quietly() {
    local out
    out=$("$@" 2>&1) || {
        printf '%s\n' "$out" >&2
        return 1
    }
}

toml_str() { printf '"%s"' "$1"; }

# ledger_toml ORG MEMBER: the [organization] and [ledger] sections for MEMBER of ORG, with the
# paths its container sees (/org/pki) and ORG's own peer.
ledger_toml() {
    local org=$1 identity=/org/pki/$1/users/$2
    cat <<EOF
[organization]
id = $(toml_str "$org")
pki = "/org/pki"
identity = $(toml_str "$identity")

[ledger]
backend = "fabric"

[ledger.fabric]
endpoint = $(toml_str "$(peer_address "$org")")
tls_ca = $(toml_str "/org/pki/$org/msp/tlscacerts/ca.pem")
channel = $(toml_str "$CHANNEL")
chaincode = $(toml_str "$CHAINCODE")
msp_id = $(toml_str "$org")
identity = $(toml_str "$identity/msp")
EOF
}

write_tomls() {
    local org
    for org in "${ORG_LIST[@]}"; do
        {
            echo "# $org's client (deploy/run.sh); paths as its containers see them"
            ledger_toml "$org" client1
            printf '\n[client]\nserver = "%s:%s"\n' "$AGG_HOST" "$AGG_PORT"
        } >"$DEPLOY_WORK/$org/fedchain.toml"
    done
    {
        echo "# the aggregator of $AGG_ORG (deploy/run.sh); paths as its container sees them"
        ledger_toml "$AGG_ORG" aggregator
        printf '\n[server]\naddress = "0.0.0.0:%s"\n' "$AGG_PORT"
    } >"$DEPLOY_WORK/aggregator/fedchain.toml"
}

# ---------------------------------------------------------------------------------------------

cmd_build() {
    local image
    command -v docker >/dev/null 2>&1 || die "docker is not installed"
    docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (DOCKER_HOST=${DOCKER_HOST:-})"
    docker compose version >/dev/null 2>&1 || die "Docker Compose v2 ('docker compose') is required"
    local version
    version=$(env_get "$NET_ENV" FABRIC_VERSION)
    for image in fabric-peer fabric-orderer fabric-tools; do
        docker image inspect "hyperledger/$image:$version" >/dev/null 2>&1 ||
            die "image hyperledger/$image:$version is missing: docker pull it (or, offline, build" \
                "the local stand-ins with ../shared/docker/base-images.sh)"
    done
    # Only what each image needs is sent as the build context (a tar on stdin).
    log "building fedchain:local (docker/fedchain.Dockerfile)"
    tar -C "$REPO_DIR" -cf - --exclude=__pycache__ --exclude='*.pyc' pyproject.toml README.md src \
        docker/fedchain.Dockerfile |
        docker build --network host -q -f docker/fedchain.Dockerfile -t fedchain:local - >/dev/null
    log "building fedchain-chaincode:local (chaincode/Dockerfile)"
    tar -C "$REPO_DIR/chaincode" -cf - Dockerfile package.json package-lock.json tsconfig.json src |
        docker build --network host -q -t fedchain-chaincode:local - >/dev/null
}

# The fingerprint line ("org=sha256") that ORG told the others out of band.
told() { cat "$PUBLIC/fingerprints/$1.txt"; }

org_keys() {
    local org=$1 extra=()
    mkdir -p "$DEPLOY_WORK/$org/state" "$DEPLOY_WORK/$org/run"
    if [[ $org == "$AGG_ORG" ]]; then extra=(--aggregator --hosts "$AGG_HOST"); fi
    fedchain_at "$org" ro pki org init --org "$org" --out /org/pki "${extra[@]}" >/dev/null
    fedchain_at "$org" rw pki org export --pki /org/pki --org "$org" \
        --out "/public/bundles/$org.json" | tail -n 1 >"$PUBLIC/fingerprints/$org.txt"
    grep -q "^$org=[0-9a-f]\{64\}$" "$PUBLIC/fingerprints/$org.txt" || die "no fingerprint from $org"
}

org_sign() {
    local org=$1 other expect=()
    for other in "${ORG_LIST[@]}"; do
        [[ $other == "$org" ]] || expect+=("$(told "$other")")
    done
    # One organization after another: each signature is added to the same (public) file.
    fedchain_at "$org" rw pki consortium sign --definition /public/consortium-definition.json \
        --pki /org/pki --org "$org" --expect "$(IFS=,; echo "${expect[*]}")" >/dev/null
}

org_join() {
    local org=$1
    fedchain_at "$org" ro pki consortium join --definition /public/consortium-definition.json \
        --pki /org/pki >/dev/null
    fedchain_at "$org" ro pki fabric-nodes --pki /org/pki --out /org/crypto --no-orderer \
        --hosts "$(peer_host "$org")" >/dev/null
    org_nodes "$org"
}

# org_nodes ORG: the node folders its long-running services mount instead of pki/ (one identity
# and the consortium's public files, no CA key): node/client1, and node/aggregator at the
# aggregator's organization. Made once; a consortium kept from before gets them here too.
org_nodes() {
    local org=$1 name names=(client1)
    [[ $org == "$AGG_ORG" ]] && names+=(aggregator)
    for name in "${names[@]}"; do
        [[ -d $DEPLOY_WORK/$org/node/$name ]] && continue
        fedchain_at "$org" ro pki org node --pki /org/pki --org "$org" --identity "$name" \
            --out "/org/node/$name" >/dev/null
    done
}

cmd_ceremony() {
    local org bundles=()
    if [[ -d $DEPLOY_WORK/$AGG_ORG/pki ]]; then
        log "keeping the consortium in $DEPLOY_WORK (deploy/run.sh down --purge starts over)"
        parallel org_nodes
        write_tomls
        return 0
    fi
    mkdir -p "$PUBLIC"/{bundles,fingerprints,channel,chaincode,models} "$DEPLOY_WORK/$ORDERER_ORG/channel" \
        "$DEPLOY_WORK/aggregator"/{models,run}
    log "each organization makes its own keys and exports its public bundle"
    parallel org_keys
    for org in "${ORG_LIST[@]}"; do bundles+=(--bundle "/public/bundles/$org.json"); done
    log "$AGG_ORG proposes the consortium definition $CONSORTIUM"
    fedchain_at "$AGG_ORG" rw pki consortium propose --name "$CONSORTIUM" --aggregator "$AGG_ORG" \
        "${bundles[@]}" --out /public/consortium-definition.json >/dev/null
    log "every member's admin signs it, after checking the others' fingerprints"
    for org in "${ORG_LIST[@]}"; do org_sign "$org"; done
    log "every member joins and issues its own peer ($(for o in "${ORG_LIST[@]}"; do printf '%s ' "$(peer_host "$o")"; done))"
    parallel org_join
    log "the orderer organization issues its orderer ($ORDERER_HOST) and admin"
    fedchain_at "$ORDERER_ORG" ro pki fabric-nodes --out /org/crypto --orderer-org "$ORDERER_ORG" \
        --hosts "$ORDERER_HOST" >/dev/null
    # The public MSPs (CA certificates, NodeOUs) that the orderer organization needs for the
    # channel configuration, and the orderer organization's MSP and consenter certificate.
    for org in "${ORG_LIST[@]}"; do
        publish "$DEPLOY_WORK/$org/pki/$org/msp" "$PUBLIC/msp/$org"
    done
    publish "$DEPLOY_WORK/$ORDERER_ORG/crypto/$ORDERER_ORG/msp" "$PUBLIC/ordererorg/msp"
    cp "$DEPLOY_WORK/$ORDERER_ORG/crypto/$ORDERER_ORG/orderers/orderer0/tls/server.crt" \
        "$PUBLIC/ordererorg/orderer0-tls.crt"
    write_tomls
}

# configtx: the channel profile FedchainDeploy from the configured host names and ports, with
# the public MSPs as the orderer organization's admin container sees them (/public).
write_configtx() {
    local org out=$DEPLOY_WORK/$ORDERER_ORG/channel/configtx.yaml
    {
        cat <<EOF
# Written by deploy/run.sh from deploy/env/*.env: the channel's organizations (public MSPs
# under /public), anchor peers and orderer at their configured host names and ports.
# Policies as fabric-network/configtx.yaml: MAJORITY of the organizations endorse.
---
Organizations:
  - &$ORDERER_ORG
    Name: $ORDERER_ORG
    ID: $ORDERER_ORG
    MSPDir: /public/ordererorg/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('$ORDERER_ORG.member')"}
      Writers: {Type: Signature, Rule: "OR('$ORDERER_ORG.member')"}
      Admins: {Type: Signature, Rule: "OR('$ORDERER_ORG.admin')"}
    OrdererEndpoints:
      - $ORDERER_HOST:$ORDERER_PORT
EOF
        for org in "${ORG_LIST[@]}"; do
            cat <<EOF
  - &$org
    Name: $org
    ID: $org
    MSPDir: /public/msp/$org
    Policies:
      Readers: {Type: Signature, Rule: "OR('$org.admin', '$org.peer', '$org.client')"}
      Writers: {Type: Signature, Rule: "OR('$org.admin', '$org.client')"}
      Admins: {Type: Signature, Rule: "OR('$org.admin')"}
      Endorsement: {Type: Signature, Rule: "OR('$org.peer')"}
    AnchorPeers:
      - Host: $(peer_host "$org")
        Port: $(env_get "$ENV_DIR/$org.env" PEER_PORT)
EOF
        done
        cat <<EOF

Capabilities:
  Channel: &ChannelCapabilities {V2_0: true}
  Orderer: &OrdererCapabilities {V2_0: true}
  Application: &ApplicationCapabilities {V2_5: true}

Application: &ApplicationDefaults
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    LifecycleEndorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
    Endorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
  Capabilities: *ApplicationCapabilities

Orderer: &OrdererDefaults
  OrdererType: etcdraft
  BatchTimeout: 250ms
  BatchSize: {MaxMessageCount: 50, AbsoluteMaxBytes: 99 MB, PreferredMaxBytes: 512 KB}
  EtcdRaft:
    Consenters:
      - Host: $ORDERER_HOST
        Port: $ORDERER_PORT
        ClientTLSCert: /public/ordererorg/orderer0-tls.crt
        ServerTLSCert: /public/ordererorg/orderer0-tls.crt
    Options:
      TickInterval: 100ms
      ElectionTick: 10
      HeartbeatTick: 1
      MaxInflightBlocks: 5
      SnapshotIntervalSize: 16 MB
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}

Channel: &ChannelDefaults
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities: *ChannelCapabilities

Profiles:
  FedchainDeploy:
    <<: *ChannelDefaults
    Orderer:
      <<: *OrdererDefaults
      Organizations: [*$ORDERER_ORG]
      Capabilities: *OrdererCapabilities
    Application:
      <<: *ApplicationDefaults
      Organizations: [$(printf '*%s, ' "${ORG_LIST[@]}" | sed 's/, $//')]
      Capabilities: *ApplicationCapabilities
EOF
    } >"$out"
}

# package_chaincode: the ccaas package (public: metadata.json + connection.json naming
# "chaincode:9999", which each organization's peer resolves to its own chaincode server).
package_chaincode() {
    local tmp pkg=$PUBLIC/chaincode/$CHAINCODE.tgz
    [[ -f $pkg ]] && return 0
    tmp=$(mktemp -d)
    printf '{"address": "chaincode:9999", "dial_timeout": "10s", "tls_required": false}\n' \
        >"$tmp/connection.json"
    printf '{"type": "ccaas", "label": "%s"}\n' "$CHAINCODE_LABEL" >"$tmp/metadata.json"
    tar -C "$tmp" -czf "$tmp/code.tar.gz" connection.json
    tar -C "$tmp" -czf "$pkg" metadata.json code.tar.gz
    rm -rf "$tmp"
}

org_peer_up() {
    local org=$1
    quietly project "$org" up -d --quiet-pull peer
    admin "$org" wait
    admin "$org" join
    admin "$org" install
}

org_chaincode_up() {
    local org=$1 id
    id=$(cat "$DEPLOY_WORK/$org/state/package_id")
    CHAINCODE_ID=$id quietly project "$org" up -d chaincode
    admin "$org" approve
}

org_ready() { admin "$1" ready; }

cmd_up() {
    local org pairs=()
    [[ -d $DEPLOY_WORK/$ORDERER_ORG/crypto ]] || die "no keys in $DEPLOY_WORK: run the ceremony first"
    docker network inspect "$FC_INTERNET" >/dev/null 2>&1 ||
        docker network create "$FC_INTERNET" >/dev/null
    mkdir -p "$PUBLIC/channel" "$PUBLIC/chaincode"
    package_chaincode
    write_configtx
    log "the orderer organization starts its orderer and creates the channel"
    quietly project "$ORDERER_ORG" up -d orderer
    project "$ORDERER_ORG" run --rm --no-deps -T admin wait
    project "$ORDERER_ORG" run --rm --no-deps -T admin genesis
    project "$ORDERER_ORG" run --rm --no-deps -T admin join
    cp "$DEPLOY_WORK/$ORDERER_ORG/channel/$CHANNEL.block" "$PUBLIC/channel/$CHANNEL.block"
    log "each organization starts its peer, joins it and installs the chaincode with its own admin"
    parallel org_peer_up
    log "each organization starts its chaincode server and approves with its own admin"
    parallel org_chaincode_up
    for org in "${ORG_LIST[@]}"; do
        pairs+=("$(peer_address "$org")=/org/pki/$org/msp/tlscacerts/ca.pem")
    done
    log "$AGG_ORG's admin commits the definition (the peers of the organizations endorse it)"
    PEER_ADDRESSES=$(IFS=,; echo "${pairs[*]}") admin "$AGG_ORG" commit
    log "waiting until every peer serves the chaincode and discovers every organization"
    parallel org_ready
}

# container_of PARTY SERVICE: the id of PARTY's container for SERVICE (running or exited).
container_of() { project "$1" ps --all --quiet "$2"; }

cmd_train() {
    local org name status code deadline failed=() pending ids=() names=()
    rm -rf "$DEPLOY_WORK/aggregator/models" "$DEPLOY_WORK/aggregator/run"
    mkdir -p "$DEPLOY_WORK/aggregator"/{models,run}
    log "the aggregator ($AGG_HOST:$AGG_PORT) and each organization's client start"
    quietly project aggregator up -d --force-recreate server
    ids+=("$(container_of aggregator server)")
    names+=(aggregator)
    for org in "${ORG_LIST[@]}"; do
        mkdir -p "$DEPLOY_WORK/$org/run"
        quietly project "$org" up -d --force-recreate client
        ids+=("$(container_of "$org" client)")
        names+=("$org")
    done
    deadline=$((SECONDS + TRAIN_S))
    while :; do
        pending=0 failed=()
        for i in "${!ids[@]}"; do
            read -r status code < <(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "${ids[$i]}")
            if [[ $status != exited ]]; then
                pending=1
            elif [[ $code != 0 ]]; then
                failed+=("$i")
            fi
        done
        if ((${#failed[@]})); then
            for i in "${failed[@]}"; do
                name=${names[$i]}
                printf -- '--- %s exited non-zero; its last lines:\n' "$name" >&2
                docker logs --tail 30 "${ids[$i]}" >&2 || true
            done
            die "training failed"
        fi
        ((pending)) || break
        ((SECONDS < deadline)) || die "training did not finish within ${TRAIN_S}s"
        sleep 1 # polling interval of the bounded wait for the containers to exit
    done
    docker logs --tail 8 "${ids[0]}" 2>&1 | sed 's/^/aggregator| /' >&2
    log "the aggregator publishes its models to the members ($PUBLIC/models)"
    rm -rf "$PUBLIC/models"
    cp -R "$DEPLOY_WORK/aggregator/models" "$PUBLIC/models"
}

# The auditor's own check of the published models against the channel's records (what
# `fedchain audit --models` does on an embedded ledger): every model hash the run's records
# name has a file here, with that SHA-256.
MODEL_CHECK='
import sys
from pathlib import Path
from fedchain.config import load_settings
from fedchain.ledger.audit import check_models
from fedchain.ledger.factory import open_for_reading
from fedchain.ledger.replay import replay
handle = open_for_reading(load_settings(Path("/org/fedchain.toml")))
try:
    entries = handle.metadata_get()
finally:
    handle.close()
hashes = [r.model_sha256 for r in replay(entries) if r.model_sha256]
check = check_models(Path("/public/models"), hashes)
print(f"models: {len(check.verified)} verified, {len(check.missing)} missing, "
      f"{len(check.mismatched)} altered (of {len(hashes)} recorded)")
sys.exit(0 if hashes and not check.missing and not check.mismatched else 1)
'

cmd_audit() {
    log "$AUDITOR audits the channel as itself, with the models the aggregator published"
    project "$AUDITOR" run --rm --no-deps -T -e COLUMNS=160 --entrypoint fedchain client \
        audit --config /org/fedchain.toml --models /public/models
    project "$AUDITOR" run --rm --no-deps -T --entrypoint python client -c "$MODEL_CHECK"
}

cmd_down() {
    local party purge=${1:-}
    for party in aggregator "${ORG_LIST[@]}" "$ORDERER_ORG"; do
        quietly project "$party" --profile tools --profile train down --volumes --remove-orphans \
            --timeout 10
    done
    if docker network inspect "$FC_INTERNET" >/dev/null 2>&1; then
        docker network rm "$FC_INTERNET" >/dev/null
    fi
    # The channel went with the volumes: its block, package ids and the run's outputs too.
    rm -rf "$DEPLOY_WORK/$ORDERER_ORG/channel/$CHANNEL.block" "$PUBLIC/channel" "$PUBLIC/models" \
        "$DEPLOY_WORK"/*/state/package_id
    if [[ $purge == --purge ]]; then
        [[ -f $DEPLOY_WORK/public/consortium-definition.json || ! -e $DEPLOY_WORK ]] ||
            die "$DEPLOY_WORK does not look like deploy/run.sh's work folder; not deleting it"
        rm -rf "$DEPLOY_WORK"
    fi
}

# timed STEP ARGS...: run cmd_STEP and record its duration.
timed() {
    local step=$1 start=$SECONDS
    shift
    "cmd_$step" "$@"
    log "$step took $((SECONDS - start)) s"
    if [[ -d $DEPLOY_WORK ]]; then
        printf '%s %s\n' "$step" "$((SECONDS - start))" >>"$DEPLOY_WORK/times.log"
    fi
}

(($#)) || die "usage: deploy/run.sh build|ceremony|up|train|audit|down [--purge]|all ..."
while (($#)); do
    case "$1" in
    build | ceremony | up | train | audit) timed "$1" ;;
    down)
        if [[ ${2:-} == --purge ]]; then
            timed down --purge
            shift
        else
            timed down
        fi
        ;;
    all) for step in build ceremony up train audit; do timed "$step"; done ;;
    *) die "unknown step '$1' (build, ceremony, up, train, audit, down [--purge], all)" ;;
    esac
    shift
done
