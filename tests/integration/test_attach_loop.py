"""The organization's attach loop on real gRPC channels: each change (unreachable, attached,
lost) is reported with its reason and the wait before the next attempt, which doubles up to a
cap. Time is injected: the loop's ``wait`` records the delays instead of sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from tests.integration.runtime_support import WAIT, free_port

from fedchain.pki import AGGREGATOR_NAME, Consortium, identity_dir, load_identity
from fedchain.transport import DataPlaneServer
from fedchain.transport.framing import SERVICE, PingRequest
from fedchain.transport.presence import AttachLoop, Backoff
from fedchain.transport.tls import channel_credentials, channel_options

Reports = list[tuple[str, dict[str, Any]]]


def attach_call(address: str, pki: Path, consortium: Consortium) -> Callable[[], Iterator[bytes]]:
    """org2's ``Attach`` call to ``address`` over a real mTLS channel."""
    identity = load_identity(identity_dir(pki, "org2", "client1"))
    channel = grpc.secure_channel(
        address, channel_credentials(identity, consortium), options=channel_options(1 << 20)
    )
    method = channel.unary_stream(f"/{SERVICE}/Attach")
    request = PingRequest("org2").encode()
    return lambda: method(request)


def run_loop(call: Callable[[], Iterator[bytes]], stop_after: Callable[[Reports], bool],
             before: Callable[[Reports], None] | None = None) -> Reports:  # fmt: skip
    """Run the loop until ``stop_after(reports)`` holds at a wait; the reports it made."""
    reports: Reports = []
    ended = threading.Event()

    def report(state: str, details: dict[str, Any]) -> None:
        reports.append((state, details))
        if before is not None:
            before(reports)

    def wait(_seconds: float) -> bool:
        if stop_after(reports):
            ended.set()
            return True
        return False

    loop = AttachLoop(call, report=report, backoff=Backoff(first=0.5, cap=4.0), wait=wait)
    loop.start()
    try:
        assert ended.wait(WAIT), reports
    finally:
        loop.stop()
    return reports


def test_an_unreachable_aggregator_is_retried_with_a_capped_backoff_and_each_retry_said(
    consortium_dir: Path, consortium: Consortium
) -> None:
    """A client against a server that is down printed one line, then retried forever in
    silence."""
    call = attach_call(f"127.0.0.1:{free_port()}", consortium_dir, consortium)
    reports = run_loop(call, lambda got: len(got) >= 7)
    assert [state for state, _ in reports] == ["unreachable"] * 7
    assert [d["retry_in"] for _, d in reports] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    for _, details in reports:
        assert details["reason"].startswith("UNAVAILABLE: "), details
        assert "\n" not in details["reason"]


def test_attached_then_lost_when_the_aggregator_stops_retrying_from_the_first_delay(
    consortium_dir: Path, consortium: Consortium
) -> None:
    server = DataPlaneServer(
        load_identity(identity_dir(consortium_dir, "org1", AGGREGATOR_NAME)), consortium,
        max_payload_bytes=1 << 20,
    )  # fmt: skip
    address = f"127.0.0.1:{server.start('127.0.0.1:0')}"

    def stop_server_once_attached(got: Reports) -> None:
        if got[-1][0] == "attached":
            threading.Thread(target=server.stop, args=(0,)).start()

    try:
        reports = run_loop(
            attach_call(address, consortium_dir, consortium),
            lambda got: bool(got) and got[-1][0] == "lost",
            before=stop_server_once_attached,
        )
    finally:
        server.stop(0)
    assert [state for state, _ in reports] == ["attached", "lost"]
    assert reports[1][1]["retry_in"] == 0.5
