"""One stand-in channel: endorsing peers, orderer/committer and a TLS Gateway on loopback.

Every certificate comes from the consortium's own CAs (``fedchain.pki``): one peer identity
per endorsing organization, and per endorsing organization a gateway port whose TLS server
certificate (SANs localhost and 127.0.0.1) that organization's CA issued (``endpoints`` and
``tls_cas``); ``endpoint`` / ``tls_ca`` are the first organization's.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from fabric_protos.gateway import gateway_pb2_grpc

from fedchain.ledger.fabric import Gateway, Signer, connect, from_pki_identity
from fedchain.pki import AGGREGATOR_NAME, Consortium, issue_identity, load_ca, load_identity
from tests.fabric_support.gateway import GatewayService
from tests.fabric_support.ledger import Ledger
from tests.fabric_support.peer import EndorsingPeer
from tests.fabric_support.state import WorldState


class StandInNetwork:
    """A channel running the real chaincode; ``endpoint`` + ``tls_ca`` reach its gateway."""

    def __init__(
        self,
        *,
        pki_dir: Path,
        consortium: Consortium,
        chaincode_address: str,
        endorsing_orgs: Sequence[str] = ("org1", "org2"),
        channel: str = "fedchain",
        chaincode: str = "fedchain",
        batch_timeout: float = 0.01,
        batch_size: int = 10,
        page_size: int = 100,
    ) -> None:
        now = datetime.now(UTC)
        self.channel, self.chaincode = channel, chaincode
        self.state = WorldState()
        self.peers: list[EndorsingPeer] = []
        for i, org in enumerate(endorsing_orgs):
            ca_cert, ca_key = load_ca(pki_dir, org)
            identity = issue_identity(ca_cert, ca_key, org=org, name="peer0", role="peer", now=now)
            self.peers.append(EndorsingPeer(
                identity, address=f"peer0.{org}:{7051 + 1000 * i}", consortium=consortium,
                channel=channel, chaincode=chaincode, state=self.state,
                chaincode_address=chaincode_address, page_size=page_size,
            ))  # fmt: skip
        self.ledger = Ledger(
            self.state, consortium, channel=channel,
            endorsements_required=len(self.peers), batch_timeout=batch_timeout,
            batch_size=batch_size,
        )  # fmt: skip
        self.service = GatewayService(self.peers, self.ledger, consortium, channel)
        self.server = grpc.server(ThreadPoolExecutor(max_workers=64))
        gateway_pb2_grpc.add_GatewayServicer_to_server(self.service, self.server)
        # As on Fabric, every endorsing organization's peer hosts a gateway, its TLS server
        # certificate issued by that organization's TLS CA.
        self.endpoints: dict[str, str] = {}
        self.tls_cas: dict[str, bytes] = {}
        for org in endorsing_orgs:
            ca_cert, ca_key = load_ca(pki_dir, org, kind="tlsca")
            tls = issue_identity(
                ca_cert, ca_key, org=org, name="gateway-tls", role="peer", now=now, profile="tls"
            )
            credentials = grpc.ssl_server_credentials([(tls.key_pem(), tls.cert_pem)])
            port = self.server.add_secure_port("127.0.0.1:0", credentials)
            self.endpoints[org] = f"127.0.0.1:{port}"
            self.tls_cas[org] = ca_cert.public_bytes(serialization.Encoding.PEM)
        first = endorsing_orgs[0]
        self.endpoint, self.tls_ca = self.endpoints[first], self.tls_cas[first]
        self.server.start()

    def close(self) -> None:
        self.server.stop(grace=None).wait()
        self.ledger.close()
        self.service.close()
        for peer in self.peers:
            peer.close()


def user_dir(consortium_dir: Path, org: str) -> Path:
    """The identity an org writes with: the aggregator's for the aggregator org."""
    name = AGGREGATOR_NAME if org == "org1" else "client1"
    return consortium_dir / org / "users" / name


def gateway_for(
    network: StandInNetwork, consortium_dir: Path, org: str, signer: Signer | None = None
) -> Gateway:
    """A Gateway connection to ``network`` as ``org``'s identity (optionally another signer)."""
    client, own = from_pki_identity(load_identity(user_dir(consortium_dir, org)))
    return connect(network.endpoint, client, signer or own, tls_ca=network.tls_ca)
