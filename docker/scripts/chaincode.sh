#!/bin/sh
# Compose service "chaincode" (chaincode/Dockerfile image): the fedchain chaincode server, for
# the package id that the channel service installed. POSIX sh (the image is Alpine).
set -eu

id_file=/shared/chaincode/package_id
if [ ! -s "$id_file" ]; then
    echo "error: $id_file is missing; the channel service must complete first" >&2
    exit 1
fi
CHAINCODE_ID=$(cat "$id_file")
export CHAINCODE_ID
echo "==> serving chaincode $CHAINCODE_ID on $CHAINCODE_SERVER_ADDRESS"
exec node_modules/.bin/fabric-chaincode-node server \
    --chaincode-address="$CHAINCODE_SERVER_ADDRESS" --chaincode-id="$CHAINCODE_ID"
