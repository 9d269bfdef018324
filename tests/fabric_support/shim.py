"""The peer's side of the chaincode shim protocol, against a chaincode running as a service.

With chaincode-as-a-service the chaincode process is the gRPC server of
``protos.Chaincode/Connect`` and the peer dials it. On a new stream the chaincode sends
``REGISTER`` (payload: its ``ChaincodeID``); the peer answers ``REGISTERED`` and then
``READY``. For each invocation the peer sends ``TRANSACTION`` (payload: ``ChaincodeInput``;
``proposal``: the client's ``SignedProposal``), answers the chaincode's ``GET_STATE``,
``PUT_STATE``, ``DEL_STATE``, ``GET_STATE_BY_RANGE``, ``QUERY_STATE_NEXT``,
``QUERY_STATE_CLOSE``... with ``RESPONSE`` or ``ERROR`` (same txid and channel), and finishes
on ``COMPLETED`` (payload: ``peer.Response``, plus an optional chaincode event) or ``ERROR``.
Messages of different transactions interleave on one stream, so replies are routed by
(channel, txid).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from fabric_protos.peer import (
    chaincode_pb2,
    chaincode_shim_pb2,
    chaincode_shim_pb2_grpc,
    proposal_response_pb2,
)

from tests.fabric_support.state import Simulation

Msg = chaincode_shim_pb2.ChaincodeMessage
T = Msg.Type


class ShimError(Exception):
    """The chaincode stream failed or the chaincode broke the protocol."""


@dataclass
class Outcome:
    """What one execution produced: the chaincode's response and its event (if any)."""

    response: Any  # peer.Response
    event: Any | None  # peer.ChaincodeEvent


class ChaincodeStream:
    """One peer's stream to the chaincode service; executes transactions concurrently."""

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._routes: dict[tuple[str, str], queue.Queue[Any]] = {}
        self._lock = threading.Lock()
        stub = chaincode_shim_pb2_grpc.ChaincodeStub(self._channel)
        self._inbox = stub.Connect(iter(self._outbox.get, None))
        self.chaincode_id = self._handshake()
        self._reader = threading.Thread(target=self._read, name="shim-reader", daemon=True)
        self._reader.start()

    def _handshake(self) -> str:
        try:
            first = next(self._inbox)
        except (grpc.RpcError, StopIteration) as exc:
            self.close()
            raise ShimError(f"chaincode did not register: {exc}") from exc
        if first.type != T.REGISTER:
            self.close()
            raise ShimError(f"expected REGISTER, got {T.Name(first.type)}")
        self._outbox.put(Msg(type=T.REGISTERED))
        self._outbox.put(Msg(type=T.READY))
        return str(chaincode_pb2.ChaincodeID.FromString(first.payload).name)

    def _read(self) -> None:
        try:
            for message in self._inbox:
                with self._lock:
                    route = self._routes.get((message.channel_id, message.txid))
                if route is not None:
                    route.put(message)
        except grpc.RpcError:
            pass  # closed: pending executions time out or see the stream end below
        with self._lock:
            for route in self._routes.values():
                route.put(None)

    def execute(
        self, channel: str, txid: str, signed_proposal: Any, args: list[bytes], sim: Simulation
    ) -> Outcome:
        """Run one invocation to completion, serving its state calls from ``sim``."""
        route: queue.Queue[Any] = queue.Queue()
        with self._lock:
            if (channel, txid) in self._routes:
                raise ShimError(f"transaction {txid} is already executing")
            self._routes[(channel, txid)] = route
        try:
            payload = chaincode_pb2.ChaincodeInput(args=args).SerializeToString()
            self._send(T.TRANSACTION, channel, txid, payload, proposal=signed_proposal)
            for message in self._messages(route, txid):
                if message.type == T.COMPLETED:
                    response = proposal_response_pb2.Response.FromString(message.payload)
                    event = message.chaincode_event if message.HasField("chaincode_event") else None
                    return Outcome(response, event)
                if message.type == T.ERROR:
                    raise ShimError(message.payload.decode(errors="replace"))
                self._serve(message, sim)
            raise ShimError("unreachable")
        finally:
            with self._lock:
                del self._routes[(channel, txid)]

    def _messages(self, route: queue.Queue[Any], txid: str) -> Iterator[Any]:
        while True:
            try:
                message = route.get(timeout=self.timeout)
            except queue.Empty:
                raise ShimError(f"chaincode timed out on transaction {txid}") from None
            if message is None:
                raise ShimError("the chaincode stream ended")
            yield message

    def _serve(self, message: Any, sim: Simulation) -> None:
        try:
            payload = _handle(message, sim)
        except (KeyError, ValueError) as exc:
            self._send(T.ERROR, message.channel_id, message.txid, str(exc).encode())
            return
        self._send(T.RESPONSE, message.channel_id, message.txid, payload)

    def _send(self, kind: int, channel: str, txid: str, payload: bytes, **extra: Any) -> None:
        self._outbox.put(Msg(type=kind, channel_id=channel, txid=txid, payload=payload, **extra))

    def close(self) -> None:
        self._outbox.put(None)
        self._channel.close()


def _query_response(results: list[bytes], has_more: bool, query_id: str) -> bytes:
    response = chaincode_shim_pb2.QueryResponse(has_more=has_more, id=query_id)
    for item in results:
        response.results.add(resultBytes=item)
    data: bytes = response.SerializeToString()
    return data


def _public(collection: str) -> None:
    if collection:
        raise ValueError("private data collections are not configured")


def _handle(message: Any, sim: Simulation) -> bytes:
    """Answer one state call; ValueError/KeyError become an ERROR message, as on a peer."""
    kind, body = message.type, message.payload
    if kind == T.GET_STATE:
        request = chaincode_shim_pb2.GetState.FromString(body)
        _public(request.collection)
        return sim.get(request.key)
    if kind == T.PUT_STATE:
        put = chaincode_shim_pb2.PutState.FromString(body)
        _public(put.collection)
        sim.put(put.key, bytes(put.value))
        return b""
    if kind == T.DEL_STATE:
        delete = chaincode_shim_pb2.DelState.FromString(body)
        _public(delete.collection)
        sim.delete(delete.key)
        return b""
    if kind == T.GET_STATE_BY_RANGE:
        scan = chaincode_shim_pb2.GetStateByRange.FromString(body)
        _public(scan.collection)
        query_id, results, has_more = sim.open_range(scan.startKey, scan.endKey)
        return _query_response(results, has_more, query_id)
    if kind == T.QUERY_STATE_NEXT:
        query_id = chaincode_shim_pb2.QueryStateNext.FromString(body).id
        return _query_response(*sim.next_page(query_id), query_id)
    if kind == T.QUERY_STATE_CLOSE:
        query_id = chaincode_shim_pb2.QueryStateClose.FromString(body).id
        sim.close_range(query_id)
        return _query_response([], False, query_id)
    if kind == T.GET_QUERY_RESULT:
        raise ValueError("ExecuteQuery not supported for leveldb")
    raise ValueError(f"message type {T.Name(kind)} is not supported by this peer")
