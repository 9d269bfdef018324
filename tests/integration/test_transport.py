"""The data plane over real gRPC and real mTLS on 127.0.0.1, with certificates from fedchain.pki.

Each bad input of the runtime issue that belongs to the transport is refused here: an unknown
CA, a member claiming another org, a payload whose hash differs, an oversized payload, a fetch
of a payload not offered to the caller, an upload nobody expects, plaintext off loopback.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from fedchain.errors import (
    ConfigError,
    HashMismatch,
    PayloadError,
    PayloadTooLarge,
    PeerAuthError,
    TransportError,
)
from fedchain.hashing import sha256_hex
from fedchain.pki import (
    AGGREGATOR_NAME,
    Consortium,
    Identity,
    identity_dir,
    init_consortium,
    issue_member,
    load_ca,
    load_consortium,
    load_identity,
)
from fedchain.transport import DataPlaneClient, DataPlaneServer
from fedchain.transport.framing import (
    SERVICE,
    FetchRequest,
    PingRequest,
    UploadHeader,
    decode_header,
)
from fedchain.transport.tls import channel_credentials, channel_options

MiB = 1 << 20
LIMIT = 80 * MiB
TIMEOUT = 20.0


def _identity(pki: Path, org: str, name: str = "client1") -> Identity:
    return load_identity(identity_dir(pki, org, name))


@pytest.fixture
def server(consortium_dir: Path, consortium: Consortium) -> Iterator[tuple[DataPlaneServer, str]]:
    """A started mTLS server of the aggregator, and its address."""
    srv = DataPlaneServer(
        _identity(consortium_dir, "org1", AGGREGATOR_NAME), consortium, max_payload_bytes=LIMIT
    )
    port = srv.start("127.0.0.1:0")
    yield srv, f"127.0.0.1:{port}"
    srv.stop(0)


@pytest.fixture
def org2(
    consortium_dir: Path, consortium: Consortium, server: tuple[DataPlaneServer, str]
) -> Iterator[DataPlaneClient]:
    """A client of org2 connected to ``server``."""
    with DataPlaneClient(
        server[1], _identity(consortium_dir, "org2"), consortium, timeout=TIMEOUT
    ) as client:
        yield client


def _raw_channel(address: str, identity: Identity, consortium: Consortium) -> Any:
    """A plain gRPC channel with ``identity``'s certificate, for hand-made requests."""
    creds = channel_credentials(identity, consortium)
    return grpc.secure_channel(address, creds, options=channel_options(2 * MiB))


def test_ping_names_the_org_of_the_certificate(
    org2: DataPlaneClient, consortium_dir: Path, consortium: Consortium, server: Any
) -> None:
    assert org2.ping() == "org2"
    with DataPlaneClient(server[1], _identity(consortium_dir, "org3", "admin"), consortium) as c3:
        assert c3.ping() == "org3"


def test_fetch_and_upload_round_trip(server: Any, org2: DataPlaneClient) -> None:
    srv, _ = server
    model = os.urandom(3 * MiB + 17)  # several chunks and a partial one
    digest = sha256_hex(model)
    srv.offer(digest, model, ["org2", "org3"])
    assert org2.fetch(digest, max_size=LIMIT) == model

    reply = os.urandom(MiB // 3)
    reply_digest = sha256_hex(reply)
    future = srv.expect("org2", reply_digest)
    org2.upload(reply, task="round-1/org2")
    assert future.result(TIMEOUT) == reply
    assert ("org2", reply_digest) not in srv.expected()
    with pytest.raises(PeerAuthError):  # one upload per expectation
        org2.upload(reply, reply_digest, task="round-1/org2")


def test_empty_payload_round_trip(server: Any, org2: DataPlaneClient) -> None:
    srv, _ = server
    digest = sha256_hex(b"")
    srv.offer(digest, b"", ["org2"])
    assert org2.fetch(digest, max_size=0) == b""
    future = srv.expect("org2", digest)
    org2.upload(b"", task="t")
    assert future.result(TIMEOUT) == b""


def test_64mb_round_trip_checks_the_hash(server: Any, org2: DataPlaneClient) -> None:
    srv, _ = server
    model = os.urandom(64 * MiB)
    digest = sha256_hex(model)
    srv.offer(digest, model, ["org2"], verify=False)
    received = org2.fetch(digest, max_size=LIMIT)
    assert len(received) == len(model)
    assert sha256_hex(received) == digest
    future = srv.expect("org2", digest)
    org2.upload(received, digest, task="big")
    assert sha256_hex(future.result(TIMEOUT)) == digest


def test_orgs_fetching_one_payload_at_once_all_get_its_bytes(
    server: Any, consortium_dir: Path, consortium: Consortium
) -> None:
    srv, address = server
    model = os.urandom(5 * MiB + 123)
    digest = sha256_hex(model)
    srv.offer(digest, model, ["org2", "org3"], verify=False)
    del model  # the data plane holds the only copy (by reference), as in a round
    callers = [("org2", "client1"), ("org2", "client2"), ("org3", "client1"), ("org3", "admin")]
    start = threading.Barrier(len(callers))
    got: dict[tuple[str, str], str] = {}

    def fetch(org: str, name: str) -> None:
        with DataPlaneClient(
            address, _identity(consortium_dir, org, name), consortium, timeout=TIMEOUT
        ) as client:
            client.ping()
            start.wait(TIMEOUT)
            got[org, name] = sha256_hex(client.fetch(digest, max_size=LIMIT))

    threads = [threading.Thread(target=fetch, args=caller) for caller in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(4 * TIMEOUT)
    assert got == dict.fromkeys(callers, digest)
    with DataPlaneClient(address, _identity(consortium_dir, "org3"), consortium) as late:
        assert sha256_hex(late.fetch(digest, max_size=LIMIT)) == digest  # alone, afterwards


def test_client_with_certificate_from_unknown_ca_fails_the_handshake(
    tmp_path: Path, server: Any, org2: DataPlaneClient, consortium: Consortium
) -> None:
    # Same org names, different CAs: only the certificate chain tells them apart.
    rogue_dir = tmp_path / "rogue"
    rogue = init_consortium(rogue_dir, consortium="rogue", orgs=("org1", "org2"), aggregator="org1")
    intruder = _identity(rogue_dir, "org2")
    # It trusts the real aggregator CA, so only the server's check of its certificate fails.
    with (
        DataPlaneClient(server[1], intruder, consortium, timeout=TIMEOUT) as client,
        pytest.raises(TransportError) as info,
    ):
        client.ping()
    assert not isinstance(info.value, PeerAuthError | PayloadError)  # refused before any RPC
    with (
        DataPlaneClient(server[1], intruder, rogue, timeout=TIMEOUT) as client,
        pytest.raises(TransportError),
    ):
        client.ping()
    assert org2.ping() == "org2"  # the real member still gets in


def test_a_signing_certificate_is_no_data_plane_identity(
    server: Any, org2: DataPlaneClient, consortium_dir: Path, consortium: Consortium
) -> None:
    """Signing certificates carry no EKU (Fabric needs that) and chain to no TLS CA: a member
    presenting one over mTLS, or an aggregator serving with its own, fails the handshake."""
    member = _identity(consortium_dir, "org2")
    as_tls = replace(member, tls=replace(member, tls=None))  # the signcert used for TLS
    with (
        DataPlaneClient(server[1], as_tls, consortium, timeout=TIMEOUT) as client,
        pytest.raises(TransportError) as info,
    ):
        client.ping()
    assert not isinstance(info.value, PeerAuthError | PayloadError)  # refused before any RPC
    agg = _identity(consortium_dir, "org1", "aggregator")
    signcert_server = replace(agg, tls=replace(agg, tls=None))
    srv = DataPlaneServer(signcert_server, consortium, max_payload_bytes=MiB)
    port = srv.start("127.0.0.1:0")
    try:
        with (
            DataPlaneClient(f"127.0.0.1:{port}", member, consortium, timeout=TIMEOUT) as client,
            pytest.raises(TransportError),
        ):
            client.ping()
    finally:
        srv.stop(0)
    assert org2.ping() == "org2"  # the member's TLS certificate still gets in


def test_client_refuses_a_server_that_is_not_the_aggregator_org(
    consortium_dir: Path, consortium: Consortium
) -> None:
    # org2 holds a perfectly valid server certificate from its own CA, yet is not the aggregator.
    impostor = issue_member(
        load_ca(consortium_dir, "org2"), load_ca(consortium_dir, "org2", kind="tlsca"),
        org="org2", name="impostor", role="server", now=datetime.now(UTC),
    )  # fmt: skip
    srv = DataPlaneServer(impostor, consortium, max_payload_bytes=MiB)
    port = srv.start("127.0.0.1:0")
    try:
        with (
            DataPlaneClient(
                f"127.0.0.1:{port}", _identity(consortium_dir, "org3"), consortium, timeout=TIMEOUT
            ) as client,
            pytest.raises(TransportError),
        ):
            client.ping()
    finally:
        srv.stop(0)


def test_member_claiming_another_org_is_unauthenticated(
    server: Any, consortium_dir: Path, consortium: Consortium
) -> None:
    srv, address = server
    payload = b"model for org3 only"
    digest = sha256_hex(payload)
    srv.offer(digest, payload, ["org3"])
    future = srv.expect("org3", digest)
    channel = _raw_channel(address, _identity(consortium_dir, "org2"), consortium)
    try:
        calls: list[Any] = [
            lambda: channel.unary_unary(f"/{SERVICE}/Ping")(
                PingRequest("org3").encode(), timeout=TIMEOUT
            ),
            lambda: list(
                channel.unary_stream(f"/{SERVICE}/Fetch")(
                    FetchRequest("org3", digest, MiB).encode(), timeout=TIMEOUT
                )
            ),
            lambda: list(
                channel.stream_stream(f"/{SERVICE}/Upload")(
                    iter([UploadHeader("org3", digest, len(payload), "t").encode(), payload]),
                    timeout=TIMEOUT,
                )
            ),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "org2" in info.value.details()
    finally:
        channel.close()
    assert not future.done()  # org3's expectation is untouched


def test_fetch_of_payload_not_offered_to_the_caller_is_refused(
    server: Any, org2: DataPlaneClient
) -> None:
    srv, _ = server
    secret = b"for org3"
    srv.offer(sha256_hex(secret), secret, ["org3"])
    with pytest.raises(PeerAuthError, match="PERMISSION_DENIED"):
        org2.fetch(sha256_hex(secret), max_size=MiB)
    with pytest.raises(PayloadError, match="NOT_FOUND"):
        org2.fetch(sha256_hex(b"never offered"), max_size=MiB)


def test_withdrawn_payload_is_gone(server: Any, org2: DataPlaneClient) -> None:
    srv, _ = server
    data = b"round 1 model"
    digest = sha256_hex(data)
    srv.offer(digest, data, ["org2"])
    future = srv.expect("org2", digest)
    assert org2.fetch(digest, max_size=MiB) == data
    srv.withdraw(digest)
    assert digest not in srv.offered()
    with pytest.raises(CancelledError):
        future.result(0)
    with pytest.raises(PayloadError):
        org2.fetch(digest, max_size=MiB)
    with pytest.raises(PeerAuthError):
        org2.upload(data, task="late")


def test_fetched_bytes_not_matching_their_hash_are_refused(
    server: Any, org2: DataPlaneClient
) -> None:
    srv, _ = server
    announced = sha256_hex(b"the model on the ledger")
    srv.offer(announced, b"a different model", ["org2"], verify=False)
    with pytest.raises(HashMismatch):
        org2.fetch(announced, max_size=MiB)
    with pytest.raises(HashMismatch):  # the server's own check, with verify on
        srv.offer(announced, b"a different model", ["org2"])


def test_uploaded_bytes_not_matching_their_hash_are_refused(
    server: Any, org2: DataPlaneClient
) -> None:
    srv, _ = server
    announced = sha256_hex(b"the update on the ledger")
    future = srv.expect("org2", announced)
    with pytest.raises(HashMismatch):
        org2.upload(b"a poisoned update", announced, task="t")
    with pytest.raises(HashMismatch):  # the waiter learns why, to record it
        future.result(TIMEOUT)
    assert ("org2", announced) not in srv.expected()


def test_oversized_payloads_are_refused(server: Any, org2: DataPlaneClient) -> None:
    srv, _ = server
    with pytest.raises(PayloadTooLarge):
        srv.offer(sha256_hex(b""), bytes(LIMIT + 1), ["org2"], verify=False)

    model = os.urandom(2 * MiB)
    digest = sha256_hex(model)
    srv.offer(digest, model, ["org2"])
    with pytest.raises(PayloadTooLarge, match="RESOURCE_EXHAUSTED"):
        org2.fetch(digest, max_size=MiB)

    future = srv.expect("org2", digest, max_size=MiB)
    with pytest.raises(PayloadTooLarge, match="RESOURCE_EXHAUSTED"):
        org2.upload(model, task="t")
    with pytest.raises(PayloadTooLarge):
        future.result(TIMEOUT)


def test_unexpected_upload_is_refused_before_the_body_is_sent(
    server: Any, org2: DataPlaneClient, consortium_dir: Path, consortium: Consortium
) -> None:
    srv, address = server
    update = os.urandom(4 * MiB)
    with pytest.raises(PeerAuthError, match="PERMISSION_DENIED"):
        org2.upload(update, task="unselected")
    assert srv.expected() == frozenset()

    # At the wire: a sender holding its body until the server answers the header gets a refusal
    # (were the server to wait for the body, this would block until the deadline instead).
    answered = threading.Event()
    body_sent: list[bool] = []

    def requests() -> Iterator[bytes]:
        yield UploadHeader("org2", sha256_hex(update), len(update), "unselected").encode()
        answered.wait(TIMEOUT)
        body_sent.append(True)
        yield update[:MiB]

    channel = _raw_channel(address, _identity(consortium_dir, "org2"), consortium)
    try:
        call = channel.stream_stream(f"/{SERVICE}/Upload")(requests(), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as info:
            next(call)
        refused_before_body = body_sent == []
    finally:
        answered.set()
        channel.close()
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused_before_body


def test_truncated_upload_reopens_the_expectation(
    server: Any, org2: DataPlaneClient, consortium_dir: Path, consortium: Consortium
) -> None:
    srv, address = server
    update = os.urandom(MiB + 5)
    digest = sha256_hex(update)
    future = srv.expect("org2", digest)
    channel = _raw_channel(address, _identity(consortium_dir, "org2"), consortium)
    try:
        gate = threading.Event()

        def requests() -> Iterator[bytes]:
            yield UploadHeader("org2", digest, len(update), "t").encode()
            gate.wait(TIMEOUT)
            yield update[:1000]  # then stop: fewer bytes than announced

        call = channel.stream_stream(f"/{SERVICE}/Upload")(requests(), timeout=TIMEOUT)
        assert decode_header(next(call), "accepted")["sha256"] == digest
        gate.set()
        with pytest.raises(grpc.RpcError) as info:
            next(call)
    finally:
        channel.close()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not future.done()
    org2.upload(update, task="t")  # a retry is accepted
    assert future.result(TIMEOUT) == update


def test_client_never_closes_a_channel_it_was_handed(
    server: Any, consortium_dir: Path, consortium: Consortium
) -> None:
    identity = _identity(consortium_dir, "org2")
    channel = _raw_channel(server[1], identity, consortium)
    try:
        first = DataPlaneClient(server[1], identity, consortium, channel=channel)
        assert first.ping() == "org2"
        first.close()
        second = DataPlaneClient(server[1], identity, consortium, channel=channel)
        assert second.ping() == "org2"
    finally:
        channel.close()


@pytest.mark.parametrize(
    "address", ["0.0.0.0:0", "10.1.2.3:50051", "[::]:0", "example.org:443", "192.168.1.10:1"]
)
def test_insecure_dev_refuses_non_loopback_addresses(
    address: str, consortium_dir: Path, consortium: Consortium
) -> None:
    aggregator = _identity(consortium_dir, "org1", AGGREGATOR_NAME)
    srv = DataPlaneServer(aggregator, consortium, max_payload_bytes=MiB, insecure_dev=True)
    with pytest.raises(ConfigError, match="non-loopback"):
        srv.start(address)
    with pytest.raises(ConfigError, match="non-loopback"):
        DataPlaneClient(address, _identity(consortium_dir, "org2"), consortium, insecure_dev=True)


def test_insecure_dev_on_loopback_trusts_claims_of_members_only(
    tmp_path: Path, consortium_dir: Path, consortium: Consortium
) -> None:
    aggregator = _identity(consortium_dir, "org1", AGGREGATOR_NAME)
    srv = DataPlaneServer(aggregator, consortium, max_payload_bytes=MiB, insecure_dev=True)
    port = srv.start("127.0.0.1:0")
    try:
        data = b"dev model"
        srv.offer(sha256_hex(data), data, ["org2"])
        with DataPlaneClient(
            f"localhost:{port}", _identity(consortium_dir, "org2"), consortium, insecure_dev=True
        ) as client:
            assert client.ping() == "org2"
            assert client.fetch(sha256_hex(data), max_size=MiB) == data
        outsider_dir = tmp_path / "outsider"
        init_consortium(outsider_dir, consortium="x", orgs=("org9",), aggregator="org9")
        outsider = _identity(outsider_dir, "org9")
        with (
            DataPlaneClient(
                f"127.0.0.1:{port}", outsider, load_consortium(outsider_dir), insecure_dev=True
            ) as client,
            pytest.raises(PeerAuthError, match="UNAUTHENTICATED"),
        ):
            client.ping()
    finally:
        srv.stop(0)
