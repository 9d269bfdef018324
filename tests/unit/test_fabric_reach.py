"""A new Fabric handle decides in seconds whether its gateway can be reached at all.

Real sockets on loopback: a port bound and never listened on (connections refused), a port
that listens but never answers (the TCP handshake completes, TLS never does), and a real gRPC
server. The backoff must not run for an unreachable gateway: it is for outages after the first
contact (``tests/conformance/test_fabric_ledger.py`` checks that side).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from fedchain.config import FabricSettings
from fedchain.errors import GatewayUnreachable, LedgerUnavailable
from fedchain.ledger.fabric import FabricLedger, check_gateway, connect, from_pki_identity
from fedchain.ledger.fabric.reach import ensure_reachable, unreachable_reason
from fedchain.pki import load_identity

QUICK = 2.0  # seconds: far below the backoff's ~26 s, far above a refused connection


@pytest.fixture
def refusing_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
        yield int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # the kernel completes the TCP handshake; nobody ever answers
        yield int(sock.getsockname()[1])


def test_a_refused_connection_is_reported_at_once_with_grpc_s_reason(refusing_port: int) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{refusing_port}")
    started = time.monotonic()
    reason = unreachable_reason(channel, timeout=30)
    assert time.monotonic() - started < QUICK
    assert reason is not None
    assert "Connection refused" in reason
    channel.close()


def test_the_check_leaves_no_poller_behind_that_a_close_could_trip(refusing_port: int) -> None:
    """A refused `fedchain-client` once printed "Exception in thread ... _poll_connectivity"
    after its one error line: gRPC's connectivity poller, started by ``subscribe``, was still
    running when the channel closed. The check now returns only once it has ended."""
    errors: list[BaseException | None] = []
    hook, threading.excepthook = threading.excepthook, lambda args: errors.append(args.exc_value)
    try:
        for _ in range(3):
            channel = grpc.insecure_channel(f"127.0.0.1:{refusing_port}")
            assert unreachable_reason(channel, timeout=30) is not None
            assert channel._connectivity_state.polling is False  # gRPC's private state
            channel.close()
    finally:
        threading.excepthook = hook
    assert errors == []


def test_an_endpoint_that_never_answers_is_unreachable_after_the_timeout(
    silent_port: int,
) -> None:
    channel = grpc.secure_channel(f"127.0.0.1:{silent_port}", grpc.ssl_channel_credentials())
    with pytest.raises(GatewayUnreachable) as info:
        ensure_reachable(channel, f"127.0.0.1:{silent_port}", timeout=0.3, hint="do X")
    channel.close()
    assert info.value.reason == "no connection within 0.3 s"
    assert info.value.endpoint == f"127.0.0.1:{silent_port}"
    assert str(info.value).endswith("; do X")
    assert info.value.retried  # the runtime must not retry it either
    assert isinstance(info.value, LedgerUnavailable)


def test_a_listening_grpc_server_is_reachable() -> None:
    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        assert unreachable_reason(channel, timeout=5) is None
        channel.close()
    finally:
        server.stop(None)


def test_opening_a_ledger_on_a_stopped_network_fails_fast_without_backoff(
    refusing_port: int, consortium_dir: Path
) -> None:
    client, signer = from_pki_identity(load_identity(consortium_dir / "org2/users/client1"))
    gateway = connect(f"127.0.0.1:{refusing_port}", client, signer)
    slept: list[float] = []
    with pytest.raises(GatewayUnreachable) as info:
        FabricLedger(gateway, owns_gateway=True, sleep=slept.append)
    assert slept == []  # the ~26 s backoff never started
    assert info.value.endpoint == f"127.0.0.1:{refusing_port}"
    assert "is the Fabric network up" in str(info.value)


def test_check_gateway_needs_no_identity(refusing_port: int) -> None:
    settings = FabricSettings(endpoint=f"127.0.0.1:{refusing_port}")
    with pytest.raises(GatewayUnreachable, match=r"Connection refused.*; start it"):
        check_gateway(settings, hint="start it")
