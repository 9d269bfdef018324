"""Refused certificates end the attach loop; an absent aggregator does not.

gRPC says ``UNAVAILABLE`` for both: a client whose certificate the aggregator refuses used to
retry forever, saying "Socket closed". These run real gRPC servers with real mTLS on loopback
against real certificates of a second consortium, and a TCP listener that closes every
connection (what a port-forwarding proxy with no server behind it does).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from tests.integration.runtime_support import WAIT, free_port

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
from fedchain.transport.framing import SERVICE, PingRequest
from fedchain.transport.handshake import diagnose
from fedchain.transport.presence import AttachLoop, Backoff
from fedchain.transport.tls import channel_credentials, channel_options

THEIRS = "the aggregator refused this organization's TLS certificate"
OURS = "the server's TLS certificate is not the aggregator's"


def _identity(pki: Path, org: str, name: str = "client1") -> Identity:
    return load_identity(identity_dir(pki, org, name))


@pytest.fixture(scope="module")
def rogue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another consortium with the same org names: only the CAs differ."""
    out = tmp_path_factory.mktemp("rogue") / "rogue"
    init_consortium(out, consortium="rogue", orgs=("org1", "org2"), aggregator="org1")
    return out


@pytest.fixture
def aggregator(consortium_dir: Path, consortium: Consortium) -> Iterator[str]:
    """The real aggregator's data plane; its address."""
    server = DataPlaneServer(
        _identity(consortium_dir, "org1", AGGREGATOR_NAME), consortium, max_payload_bytes=1 << 20
    )
    port = server.start("127.0.0.1:0")
    yield f"127.0.0.1:{port}"
    server.stop(0)


def _listener(answer: bytes) -> Iterator[str]:
    """A TCP listener that answers each connection with ``answer`` and closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                if answer:
                    conn.recv(4096)
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone does not)
    listener.close()
    thread.join(WAIT)
    assert not thread.is_alive()


@pytest.fixture
def closer() -> Iterator[str]:
    """Closes every connection at once: a port-forwarding proxy with nobody behind it."""
    yield from _listener(b"")


@pytest.fixture
def web() -> Iterator[str]:
    """Answers in plain HTTP: a wrong port (an explorer, a web server)."""
    yield from _listener(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def test_diagnose_tells_refused_certificates_from_an_absent_server(
    aggregator: str, closer: str, consortium_dir: Path, consortium: Consortium, rogue_dir: Path
) -> None:
    member = _identity(consortium_dir, "org2")
    intruder = _identity(rogue_dir, "org2")  # trusts the real aggregator; its CA is unknown
    signcert = replace(member, tls=replace(member, tls=None))  # MSP certificate used for TLS
    assert diagnose(aggregator, member, consortium) is None
    for refused in (intruder, signcert):
        reason = diagnose(aggregator, refused, consortium)
        assert (reason or "").startswith(THEIRS), reason
    assert diagnose(f"127.0.0.1:{free_port()}", member, consortium) is None  # nobody there
    assert diagnose(closer, member, consortium) is None  # a proxy with nobody behind it


def test_diagnose_names_a_server_that_is_not_the_aggregator(
    consortium_dir: Path, consortium: Consortium, rogue_dir: Path
) -> None:
    member = _identity(consortium_dir, "org2")
    impostor = issue_member(
        load_ca(consortium_dir, "org2"), load_ca(consortium_dir, "org2", kind="tlsca"),
        org="org2", name="impostor", role="server", now=datetime.now(UTC),
    )  # fmt: skip
    servers = [
        DataPlaneServer(impostor, consortium, max_payload_bytes=1 << 20),  # a member's server
        DataPlaneServer(  # another consortium's aggregator
            _identity(rogue_dir, "org1", AGGREGATOR_NAME),
            load_consortium(rogue_dir),
            max_payload_bytes=1 << 20,
        ),
    ]
    try:
        for server in servers:
            address = f"127.0.0.1:{server.start('127.0.0.1:0')}"
            reason = diagnose(address, member, consortium)
            assert (reason or "").startswith(OURS), reason
            assert "TLS CA of org1" in (reason or "")
    finally:
        for server in servers:
            server.stop(0)


def _attach(
    address: str, identity: Identity, consortium: Consortium
) -> tuple[AttachLoop, list[str]]:
    """Run ``identity``'s attach loop against ``address`` until it ends or has retried twice."""
    client = DataPlaneClient(address, identity, consortium)
    retries: list[str] = []
    retried = threading.Event()

    def report(state: str, details: dict[str, Any]) -> None:
        retries.append(f"{state}: {details.get('reason')}")
        if len(retries) >= 2:
            retried.set()

    try:
        with client.attached(report) as loop:
            assert _either(loop.ended, retried), retries
        return loop, retries
    finally:
        client.close()


def _either(first: threading.Event, second: threading.Event) -> bool:
    """Wait (bounded) until one of two events is set."""
    both = threading.Event()
    for event in (first, second):
        threading.Thread(target=lambda e=event: e.wait(WAIT) and both.set(), daemon=True).start()
    return both.wait(WAIT)


def test_a_refused_certificate_ends_the_attach_loop_at_once(
    aggregator: str, consortium_dir: Path, consortium: Consortium, rogue_dir: Path
) -> None:
    loop, retries = _attach(aggregator, _identity(rogue_dir, "org2"), consortium)
    assert loop.ended.is_set()
    assert retries == []
    assert loop.refused is not None
    assert loop.refused.startswith(THEIRS)
    trusting_rogue = load_consortium(rogue_dir)
    loop, retries = _attach(aggregator, _identity(consortium_dir, "org2"), trusting_rogue)
    assert loop.ended.is_set()
    assert retries == []
    assert loop.refused is not None
    assert loop.refused.startswith(OURS)


def test_a_proxy_with_nobody_behind_it_is_retried_not_refused(
    closer: str, consortium_dir: Path, consortium: Consortium
) -> None:
    loop, retries = _attach(closer, _identity(consortium_dir, "org2"), consortium)
    assert len(retries) >= 2
    assert all(r.startswith("unreachable: UNAVAILABLE") for r in retries)
    assert loop.refused is None


def test_an_org_the_aggregator_authenticates_but_refuses_ends_the_loop(
    aggregator: str, consortium_dir: Path, consortium: Consortium
) -> None:
    """org2's valid certificate claiming org3: UNAUTHENTICATED, which no retry can change."""
    identity = _identity(consortium_dir, "org2")
    channel = grpc.secure_channel(
        aggregator, channel_credentials(identity, consortium), options=channel_options(1 << 20)
    )
    method = channel.unary_stream(f"/{SERVICE}/Attach")
    waits: list[float] = []

    def wait(seconds: float) -> bool:  # a retry would be the end of the test: stop there
        waits.append(seconds)
        return True

    loop = AttachLoop(
        lambda: method(PingRequest("org3").encode()),
        report=lambda _state, _details: None,
        backoff=Backoff(first=0.5, cap=4.0),
        wait=wait,
    )
    loop.start()
    try:
        assert loop.ended.wait(WAIT)
    finally:
        loop.stop()
        channel.close()
    assert waits == []
    assert loop.refused is not None
    assert "UNAUTHENTICATED" in loop.refused


def test_a_server_that_does_not_answer_in_tls_ends_the_loop(
    web: str, consortium_dir: Path, consortium: Consortium
) -> None:
    loop, retries = _attach(web, _identity(consortium_dir, "org2"), consortium)
    assert retries == []
    assert loop.refused == (
        "the server at this address does not answer in TLS (WRONG_VERSION_NUMBER): is this "
        "the aggregator's data-plane address?"
    )
