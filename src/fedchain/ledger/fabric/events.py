"""Chaincode events from the Gateway's server-streaming ``ChaincodeEvents`` call.

The gateway sends one response per block that holds events of the chaincode, in block order,
with the events in the order of their transactions in the block (only valid transactions emit
events). :class:`ChaincodeEvents` flattens that into :class:`ChaincodeEvent` values that keep
the block number and the event's position among the block's events, which is what a follower
needs to resume after a restart (from the block after the last one it finished).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from fedchain.errors import GatewayError
from fedchain.ledger.fabric.status import error_details, status_code_name

__all__ = ["ChaincodeEvent", "ChaincodeEvents"]


@dataclass(frozen=True)
class ChaincodeEvent:
    """One chaincode event: where it was committed, by which transaction, and its payload."""

    block_number: int
    index: int  # position among this chaincode's events in the block
    last_in_block: bool
    tx_id: str
    chaincode: str
    name: str
    payload: bytes = field(repr=False)


class ChaincodeEvents:
    """An iterator of :class:`ChaincodeEvent` over one streaming call; :meth:`close` ends it.

    Closing (from any thread) cancels the call; the iterator then simply stops. Any other end
    of the stream raises :class:`~fedchain.errors.GatewayError` with the gRPC status name, so a
    caller can tell a transient ``UNAVAILABLE`` from a refusal.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[ChaincodeEvent]:
        try:
            for response in self._call:
                block = int(response.block_number)
                count = len(response.events)
                for index, event in enumerate(response.events):
                    yield ChaincodeEvent(
                        block_number=block, index=index, last_in_block=index == count - 1,
                        tx_id=str(event.tx_id), chaincode=str(event.chaincode_id),
                        name=str(event.event_name), payload=bytes(event.payload),
                    )  # fmt: skip
        except grpc.RpcError as exc:
            if self._closed.is_set():
                return
            code = status_code_name(exc)
            text = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            raise GatewayError(
                f"chaincode events failed ({code}): {text}", code=code, details=error_details(exc)
            ) from exc

    def close(self) -> None:
        """Cancel the stream (idempotent, thread-safe)."""
        self._closed.set()
        self._call.cancel()

    def __enter__(self) -> ChaincodeEvents:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
