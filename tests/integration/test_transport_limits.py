"""Data-plane fairness (issue 12, point 3) over real gRPC and real mTLS on 127.0.0.1.

An organization over its limit of concurrent calls is refused at once with RESOURCE_EXHAUSTED
(``busy: ...``) while another organization is served; a stalled ``Upload`` is cut after the idle
deadline; ``DataPlaneClient`` waits out a busy refusal instead of failing. The end-to-end case
(100 idle calls against a running federation) is in ``test_dataplane_fairness.py``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from fedchain.config import load_settings
from fedchain.errors import ConfigError, DataPlaneBusy, PayloadTooLarge
from fedchain.pki import AGGREGATOR_NAME, Consortium, identity_dir, load_identity
from fedchain.transport import CallLimits, DataPlaneClient, DataPlaneServer
from fedchain.transport.framing import SERVICE, PingRequest
from fedchain.transport.status import error_from_rpc
from fedchain.transport.tls import channel_credentials, channel_options

PER_ORG = 3
TIMEOUT = 20.0


class _Stalled:
    """Upload calls of one org that send nothing until released."""

    def __init__(self, address: str, pki: Path, org: str, consortium: Consortium) -> None:
        creds = channel_credentials(load_identity(identity_dir(pki, org, "client1")), consortium)
        self.channel = grpc.secure_channel(address, creds, options=channel_options(1 << 20))
        self.release = threading.Event()
        self.calls: list[Any] = []

    def _nothing(self) -> Iterator[bytes]:
        self.release.wait()
        yield from ()

    def open(self, count: int) -> list[Any]:
        upload = self.channel.stream_stream(f"/{SERVICE}/Upload")
        new = [upload(self._nothing(), timeout=TIMEOUT) for _ in range(count)]
        self.calls += new
        return new

    def close(self) -> None:
        self.release.set()
        self.channel.close()


class _Refusals(logging.Handler):
    """Counts the server's "refused a call" log lines; lets a test wait for the n-th."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.seen = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("refused a call"):
            with self.seen:
                self.count += 1
                self.seen.notify_all()

    def wait_for(self, n: int) -> None:
        with self.seen:
            assert self.seen.wait_for(lambda: self.count >= n, TIMEOUT)


def _client(address: str, pki: Path, consortium: Consortium) -> DataPlaneClient:
    """org2's data-plane client."""
    identity = load_identity(identity_dir(pki, "org2", "client1"))
    return DataPlaneClient(address, identity, consortium, timeout=TIMEOUT)


@pytest.fixture(params=[30.0])
def limited(
    request: pytest.FixtureRequest, consortium_dir: Path, consortium: Consortium
) -> Iterator[tuple[DataPlaneServer, str, _Refusals]]:
    """A server allowing PER_ORG calls per org, cutting streams idle for ``request.param`` s."""
    aggregator = load_identity(identity_dir(consortium_dir, "org1", AGGREGATOR_NAME))
    limits = CallLimits(per_org=PER_ORG, idle_s=request.param)
    srv = DataPlaneServer(aggregator, consortium, max_payload_bytes=1 << 20, limits=limits)
    refusals = _Refusals()
    logger = logging.getLogger("fedchain.transport.server")
    level = logger.level
    logger.setLevel(logging.WARNING)  # whatever other tests configured
    logger.addHandler(refusals)
    port = srv.start("127.0.0.1:0")
    try:
        yield srv, f"127.0.0.1:{port}", refusals
    finally:
        logger.removeHandler(refusals)
        logger.setLevel(level)
        srv.stop(0)


def test_calls_over_the_per_org_limit_are_refused_and_other_orgs_are_served(
    limited: tuple[DataPlaneServer, str, _Refusals], consortium_dir: Path, consortium: Consortium
) -> None:
    srv, address, refusals = limited
    hog = _Stalled(address, consortium_dir, "org3", consortium)
    try:
        hog.open(PER_ORG)
        assert srv.wait_running("org3", PER_ORG, TIMEOUT)  # org3 holds its whole share
        # One at a time, each seen refused before the next: never more calls in flight than
        # the server's overall limit, so every refusal is the per-org one, not gRPC's own.
        for n in range(1, 21):
            hog.open(1)
            refusals.wait_for(n)  # refused before reading anything
        assert srv.running("org3") == PER_ORG
        # org2 is served while org3 holds its whole share
        with _client(address, consortium_dir, consortium) as org2:
            assert org2.ping() == "org2"
        hog.release.set()  # the held calls end (no header: INVALID_ARGUMENT)
        codes = [c.code() for c in hog.calls]
        refused = [c for c in hog.calls if c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert len(refused) == 20, codes
        assert refused[0].details().startswith(f"busy: org3 already has {PER_ORG}")
        assert isinstance(error_from_rpc(refused[0], "upload"), DataPlaneBusy)
    finally:
        hog.close()


@pytest.mark.parametrize("limited", [0.5], indirect=True)
def test_a_stalled_upload_is_cut_after_the_idle_deadline(
    limited: tuple[DataPlaneServer, str, _Refusals], consortium_dir: Path, consortium: Consortium
) -> None:
    _, address, _ = limited
    hog = _Stalled(address, consortium_dir, "org3", consortium)
    try:
        (call,) = hog.open(1)
        # the server ends it (idle 0.5 s), long before the call's own 20 s deadline
        assert call.code() == grpc.StatusCode.CANCELLED
        assert not hog.release.is_set()  # the client never gave up on it
    finally:
        hog.close()


def test_the_client_waits_out_a_busy_refusal(
    limited: tuple[DataPlaneServer, str, _Refusals], consortium_dir: Path, consortium: Consortium
) -> None:
    srv, address, refusals = limited
    hog = _Stalled(address, consortium_dir, "org2", consortium)
    org2 = _client(address, consortium_dir, consortium)
    try:
        hog.open(PER_ORG)
        assert srv.wait_running("org2", PER_ORG, TIMEOUT)  # all held before the ping is sent
        answer: list[str] = []
        pinger = threading.Thread(target=lambda: answer.append(org2.ping()))
        pinger.start()
        refusals.wait_for(1)  # the ping was refused as busy at least once...
        assert answer == []
        hog.release.set()  # ...then the held calls end
        pinger.join(TIMEOUT)
        assert answer == ["org2"]  # and the ping, tried again, went through
        assert all(c.code() == grpc.StatusCode.INVALID_ARGUMENT for c in hog.calls)
    finally:
        org2.close()
        hog.close()


def test_a_payload_over_the_size_limit_is_still_payload_too_large(
    limited: tuple[DataPlaneServer, str, _Refusals], consortium_dir: Path, consortium: Consortium
) -> None:
    srv, address, _ = limited
    data = b"x" * 2048
    srv.expect("org2", hashlib.sha256(data).hexdigest(), max_size=1024)
    with _client(address, consortium_dir, consortium) as org2, pytest.raises(
        PayloadTooLarge
    ) as info:
        org2.upload(data, task="t")
    assert not isinstance(info.value, DataPlaneBusy)


def test_limits_are_configured_in_the_server_section(tmp_path: Path) -> None:
    path = tmp_path / "fedchain.toml"
    path.write_text("[server]\nmax_calls_per_org = 4\nmax_calls = 40\nstream_idle_s = 9.5\n")
    srv = load_settings(path).server
    assert (srv.max_calls_per_org, srv.max_calls, srv.stream_idle_s) == (4, 40, 9.5)
    assert CallLimits().total_for(3) == 32  # 8 per org, for 3 orgs and one spare share
    path.write_text("[server]\nmax_calls_per_org = 0\n")
    with pytest.raises(ConfigError, match="max_calls_per_org"):
        load_settings(path)
    with pytest.raises(ConfigError, match="positive"):
        CallLimits(idle_s=0)


# Heartbeats come every idle/2: a loaded machine must not delay one by another idle/2, so the
# deadline here is long enough for a scheduling hiccup, yet crossed three times by the beats.
@pytest.mark.parametrize("limited", [2.0], indirect=True)
def test_an_attached_org_is_never_cut_as_idle(
    limited: tuple[DataPlaneServer, str, _Refusals], consortium_dir: Path, consortium: Consortium
) -> None:
    srv, address, _ = limited  # idle deadline 2 s, heartbeats every 1 s
    with _client(address, consortium_dir, consortium) as org2, org2.attached() as loop:
        assert loop.attached.wait(TIMEOUT)
        beats = org2._attach(PingRequest("org2").encode(), timeout=TIMEOUT)
        for _ in range(6):  # 6 s of heartbeats, three idle deadlines, on a second Attach
            next(beats)
        beats.cancel()
        assert "org2" in srv.present()
