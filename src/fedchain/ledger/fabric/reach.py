"""Whether a gateway can be reached at all, decided in seconds when a handle opens.

The backoff of :mod:`.retry` (about 26 s) rides out an outage of a gateway this handle has
already reached, such as a peer restarting mid-run. A gateway that cannot be reached when the
handle opens (the network is not up, a wrong endpoint or TLS CA) is a setup problem instead: it
is reported at once as :class:`~fedchain.errors.GatewayUnreachable`. Only the connection is
checked here (TCP and TLS, no call): a gateway that is reachable but answers ``UNAVAILABLE``
(its peers still gossiping after a start) still gets the backoff.
"""

from __future__ import annotations

import queue
import time
from typing import Final

import grpc
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc

from fedchain.errors import GatewayUnreachable
from fedchain.ledger.fabric.retry import TRANSIENT
from fedchain.ledger.fabric.status import status_code_name

__all__ = ["CONNECT_TIMEOUT", "HINT", "ensure_reachable", "unreachable_reason"]

#: How long a new handle waits for the connection to its gateway.
CONNECT_TIMEOUT: Final = 5.0
#: What to do about an unreachable gateway, when the caller knows nothing more specific.
HINT: Final = "is the Fabric network up, and does [ledger.fabric] endpoint name its peer?"

_READY: Final = grpc.ChannelConnectivity.READY
_FAILED: Final = grpc.ChannelConnectivity.TRANSIENT_FAILURE
_CLOSED: Final = grpc.ChannelConnectivity.SHUTDOWN


def ensure_reachable(
    channel: grpc.Channel, endpoint: str, *, timeout: float = CONNECT_TIMEOUT, hint: str = HINT
) -> None:
    """Return once ``channel`` is connected; raise GatewayUnreachable if it cannot be."""
    reason = unreachable_reason(channel, timeout)
    if reason is not None:
        raise GatewayUnreachable(endpoint or "the given gRPC channel", reason, hint=hint)


def unreachable_reason(channel: grpc.Channel, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """``None`` once ``channel`` is connected; else why it is not, as soon as gRPC knows.

    A refused connection or a failed TLS handshake is known after the first attempt (usually
    milliseconds); an endpoint that never answers takes ``timeout`` seconds.
    """
    states: queue.SimpleQueue[grpc.ChannelConnectivity] = queue.SimpleQueue()
    callback = states.put
    channel.subscribe(callback, try_to_connect=True)
    try:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                state = states.get(timeout=remaining)
            except queue.Empty:
                break
            if state == _READY:
                return None
            if state == _FAILED:
                return _last_error(channel)
            if state == _CLOSED:
                return "the gRPC channel is closed"
    finally:
        channel.unsubscribe(callback)
        _await_poller(channel)
    return f"no connection within {timeout:g} s"


def _await_poller(channel: grpc.Channel, limit: float = 2.0) -> None:
    """Wait (at most ``limit`` s) for the thread that ``subscribe`` started to end.

    With no subscriber left, gRPC's connectivity poller stops after its current 0.2 s watch.
    A channel closed before that makes the poller's next watch raise in its thread ("Exception
    in thread ... _poll_connectivity"), which is what a command refused with an unreachable
    gateway printed after its one error line, once, on a loaded machine. The poller's state is
    not public API: without it, there is nothing to wait for.
    """
    state = getattr(channel, "_connectivity_state", None)
    lock, deadline = getattr(state, "lock", None), time.monotonic() + limit
    if lock is None:
        return
    while time.monotonic() < deadline:
        with lock:
            if not getattr(state, "polling", False):
                return
        time.sleep(0.01)


def _last_error(channel: grpc.Channel) -> str | None:
    """gRPC's own words for the failed connection (refused, TLS, DNS...), or ``None`` if a
    server answers after all (the channel connected meanwhile).

    A call on a channel in transient failure fails at once with the connection's last error,
    without reaching any server; so an empty request is enough to ask.
    """
    stub = gateway_pb2_grpc.GatewayStub(channel)
    try:
        stub.Evaluate(gateway_pb2.EvaluateRequest(), timeout=1.0, wait_for_ready=False)
    except grpc.RpcError as exc:
        code = status_code_name(exc)
        if code in TRANSIENT:
            text = exc.details() if isinstance(exc, grpc.Call) else None
            return str(text or code)
    return None
