"""``FabricLedger``: the ``Ledger`` protocol over the fedchain chaincode, via the Gateway.

- ``metadata_publish`` submits one ``metadataPublish`` transaction per batch (all or none),
  retrying transient failures step by step and re-running a transaction that lost an MVCC
  race; a refusal surfaces as the chaincode's :class:`~fedchain.errors.RuleViolation`.
- ``metadata_get`` evaluates ``metadataGet`` (the peer's world state is the authority) and
  places each entry in ledger order with the chaincode events (see :mod:`.follow`).
- ``wait``/``head`` follow the ``fedchain.records`` events from a background stream;
  ``head`` first evaluates ``metadataHead`` (the newest committed transaction, one key read).
- Opening fails within ``connect_timeout`` with :class:`~fedchain.errors.GatewayUnreachable`
  when the gateway cannot be connected to (:mod:`.reach`); later outages get the backoff.

``Entry.seq`` packs (block, transaction position, record index) (:func:`.follow.pack_seq`);
``Entry.hash`` is ``"<tx id>:<record index>"``; ``Entry.ts`` is the transaction's timestamp
in Unix ms as the chaincode recorded it; ``Entry.signer`` the writing MSP id.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fedchain.errors import (
    CommitError,
    EndorseError,
    GatewayError,
    LedgerCorrupted,
    LedgerError,
    LedgerUnavailable,
    WriteUnconfirmed,
)
from fedchain.ledger.base import Entry, Query, as_records
from fedchain.ledger.canonical import loads
from fedchain.ledger.fabric.client import Contract, Gateway
from fedchain.ledger.fabric.follow import EventIndex, Follower, IndexedTx, ResumeFile
from fedchain.ledger.fabric.reach import CONNECT_TIMEOUT, ensure_reachable
from fedchain.ledger.fabric.retry import (
    Backoff,
    refusal,
    retrying,
    unknown_function,
    while_others_lag,
)
from fedchain.ledger.records import Record, parse_record

_T = TypeVar("_T")

__all__ = ["FabricLedger"]

log = logging.getLogger(__name__)
#: Timings of each write and delivery, at DEBUG (benchmarks/demo_rounds.py --trace reads them).
trace = logging.getLogger("fedchain.trace.fabric")
_RERUN_CODES = frozenset({"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"})


class FabricLedger:
    """A handle on the fedchain chaincode that writes as the gateway identity's MSP."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        channel: str = "fedchain",
        chaincode: str = "fedchain",
        resume_file: Path | None = None,
        backoff: Backoff | None = None,
        sync_timeout: float = 30.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        owns_gateway: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._gateway, self._owns_gateway = gateway, owns_gateway
        network = gateway.network(channel)
        self._contract: Contract = network.contract(chaincode)
        self._backoff, self._sleep, self._sync_timeout = backoff or Backoff(), sleep, sync_timeout
        self._cond = threading.Condition()
        self._index = EventIndex()
        self._ts: dict[str, int] = {}
        self._stream_error: Exception | None = None
        self._no_head_function = False
        self._resume = None if resume_file is None else ResumeFile(resume_file, channel, chaincode)
        saved = self._resume.load() if self._resume else []
        for tx in saved:
            self._index.add(tx)
        delays = list(self._backoff.delays()) or [self._backoff.initial]
        self._follower = Follower(
            lambda start: network.chaincode_events(chaincode, start_block=start),
            lambda: self._index.resume_block, self._deliver, self._set_stream_error, delays,
        )  # fmt: skip
        try:
            # Unreachable now is a setup problem: say so at once (the backoff is for outages).
            ensure_reachable(gateway.channel, gateway.endpoint, timeout=connect_timeout)
            self._check_saved(saved)
            # The first call on the channel, before the event stream exists: a channel the
            # peer does not have fails here, once, instead of in a retrying stream as well.
            newest = self._newest_tx()
            self._follower.start()
            self._catch_up(newest)  # start caught up: wait(-1, 0) returns the whole backlog
        except BaseException:
            self.close()
            raise

    # -- the Ledger protocol ---------------------------------------------------------------

    @property
    def org(self) -> str:
        return self._gateway.identity.msp_id

    def metadata_publish(self, records: Record | Sequence[Record]) -> list[Entry]:
        batch = as_records(records)
        if not batch:
            return []
        payload = b"[" + b",".join(r.canonical for r in batch) + b"]"
        started = time.time()
        for _ in range(self._backoff.attempts):
            tx_id, result = self._submit(payload)
            if result is not None:
                break
        else:
            raise LedgerUnavailable(
                "metadataPublish kept losing MVCC races; try again", retried=True
            )
        answer = loads(result)
        if not isinstance(answer, dict) or answer.get("txId") != tx_id:
            raise LedgerError(f"metadataPublish of {tx_id} returned an unexpected result")
        self._ts[tx_id] = int(answer.get("ts") or 0)
        try:
            (tx,) = self._sync([tx_id])
        except LedgerUnavailable as exc:  # committed: publishing again would be a duplicate
            raise WriteUnconfirmed(f"{tx_id} is committed, but {exc}", tx_id=tx_id) from exc
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("publish %s %s start=%.4f synced=%.4f", tx_id[:12],
                        _kinds(batch), started, time.time())  # fmt: skip
        return self._entries([tx])

    def metadata_get(self, query: Query | None = None) -> list[Entry]:
        query = query or Query()
        found = self._query(query)
        txs = {tx.tx_id: tx for tx in self._sync({item["txId"] for item in found})}
        entries = [self._entry(item, txs[item["txId"]]) for item in found]
        entries = sorted((e for e in entries if query.matches(e)), key=lambda e: e.seq)
        return entries if query.limit is None else entries[: query.limit]

    def wait(self, after: int, timeout: float) -> list[Entry]:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while self._index.head <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
            txs = self._index.after(after)
        return [e for e in self._entries(txs) if e.seq > after]

    def head(self) -> int:
        """The newest position, after catching up with every transaction the peer has.

        The stream delivers transactions in ledger order, so once it has delivered the newest
        one ``metadataHead`` names, it has delivered every earlier one. A channel without a head
        (empty, or written only by a chaincode that predates it) falls back to every record.
        """
        return self._catch_up(self._newest_tx())

    def _catch_up(self, newest: str | None) -> int:
        """Wait until the stream delivered ``newest`` (or every record if there is no head)."""
        self._sync([newest] if newest else {item["txId"] for item in self._query(Query())})
        with self._cond:
            return self._index.head

    def close(self) -> None:
        self._follower.stop()
        if self._owns_gateway:
            self._gateway.close()

    def __enter__(self) -> FabricLedger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- publishing ------------------------------------------------------------------------

    def _retrying(self, step: Callable[[], _T], what: str) -> _T:
        """``step`` with this handle's backoff (see :func:`.retry.retrying`)."""
        return retrying(step, what, self._backoff, self._sleep, gateway=self._gateway.endpoint)

    def _submit(self, payload: bytes) -> tuple[str, bytes | None]:
        """One transaction: (tx id, result), or (tx id, None) if it lost an MVCC race."""
        proposal = self._contract.new_proposal("metadataPublish", [payload])
        try:
            transaction = while_others_lag(
                lambda: self._retrying(proposal.endorse, "endorse"), self.org, self._sleep
            )
        except EndorseError as exc:
            _raise_refusal(exc)
            raise
        commit = self._retrying(transaction.submit, "submit")
        status = self._retrying(commit.status, "commit status")
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("committed %s block=%d t=%.4f", status.tx_id[:12], status.block_number,
                        time.time())  # fmt: skip
        if status.code in _RERUN_CODES:
            return status.tx_id, None
        if not status.successful:
            raise CommitError(
                f"transaction {status.tx_id} was invalidated at commit: {status.code}",
                tx_id=status.tx_id, validation_code=status.code,
            )  # fmt: skip
        return status.tx_id, transaction.result

    # -- reading ---------------------------------------------------------------------------

    def _evaluate(self, function: str, *arguments: str) -> Any:
        proposal = self._contract.new_proposal(function, arguments)
        try:
            result = self._retrying(proposal.evaluate, function)
        except GatewayError as exc:
            _raise_refusal(exc)
            raise
        return loads(result)

    def _query(self, query: Query) -> list[dict[str, Any]]:
        fields = {"run": query.run, "round": query.round, "kind": query.kind,
                  "org": query.org, "task": query.task}  # fmt: skip
        argument = json.dumps({k: v for k, v in fields.items() if v is not None})
        found = self._evaluate("metadataGet", argument)
        if not isinstance(found, list) or not all(_well_formed(item) for item in found):
            raise LedgerError("metadataGet returned something other than a list of entries")
        for item in found:
            self._ts.setdefault(item["txId"], item["ts"])
        return found

    def _newest_tx(self) -> str | None:
        """The id of the newest committed publishing transaction, or None before any (or on a
        chaincode deployed before ``metadataHead``: then ``head()`` reads every record)."""
        if self._no_head_function:
            return None
        try:
            head = self._evaluate("metadataHead")
        except GatewayError as exc:
            if not unknown_function(exc, "metadataHead"):
                raise
            log.warning("the chaincode predates metadataHead; upgrade it (docs/fabric.md)")
            self._no_head_function = True
            return None
        if head is None:
            return None
        if not (isinstance(head, dict) and isinstance(head.get("txId"), str)
                and isinstance(head.get("ts"), int)):  # fmt: skip
            raise LedgerError("metadataHead returned something other than {ts, txId} or null")
        self._ts.setdefault(head["txId"], head["ts"])
        return str(head["txId"])

    def _sync(self, tx_ids: Sequence[str] | set[str]) -> list[IndexedTx]:
        """The indexed transactions ``tx_ids``, waiting for the event stream to deliver them."""
        deadline = time.monotonic() + self._sync_timeout
        with self._cond:
            while missing := [t for t in tx_ids if self._index.get(t) is None]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LedgerUnavailable(
                        f"the chaincode event stream has not delivered {len(missing)} committed "
                        f"transaction(s) (e.g. {missing[0]}) after {self._sync_timeout:.0f}s"
                        + (f": {self._stream_error}" if self._stream_error else "")
                    )
                self._cond.wait(remaining)
            return [tx for t in tx_ids if (tx := self._index.get(t)) is not None]

    def _entry(self, item: dict[str, Any], tx: IndexedTx) -> Entry:
        record = parse_record(item["record"])
        hashes = [r.hash for r in tx.records]
        if record.hash != item.get("sha256") or record.hash not in hashes:
            raise LedgerCorrupted(
                tx.first_seq,
                f"metadataGet returned a record of {tx.tx_id} "
                "that its chaincode event does not carry",
            )
        index = hashes.index(record.hash)
        return Entry(tx.first_seq + index, record, str(item["org"]), int(item["ts"]),
                     f"{tx.tx_id}:{index}")  # fmt: skip

    def _entries(self, txs: Sequence[IndexedTx]) -> list[Entry]:
        self._fill_timestamps([tx for tx in txs if tx.tx_id not in self._ts])
        return [
            Entry(tx.first_seq + i, r, r.org, self._ts.get(tx.tx_id, 0), f"{tx.tx_id}:{i}")
            for tx in txs
            for i, r in enumerate(tx.records)
        ]

    def _fill_timestamps(self, txs: Sequence[IndexedTx]) -> None:
        """Transaction times are in the world state, not in the events: ask the chaincode.

        This is on the path of every ``wait``, so transactions whose first records share run,
        round, kind and task (every organization's update to one task) share one query.
        """
        groups: dict[tuple[str | None, int | None, str, str | None], set[str]] = {}
        for tx in txs:
            first = tx.records[0]
            groups.setdefault((first.run, first.round, first.kind, first.task), set()).add(
                first.org
            )
        if len(groups) > 8:
            self._query(Query())
            return
        for (run, rnd, kind, task), orgs in groups.items():
            org = next(iter(orgs)) if len(orgs) == 1 else None
            self._query(Query(run=run, round=rnd, kind=kind, org=org, task=task))

    # -- following -------------------------------------------------------------------------

    def _deliver(self, tx: IndexedTx) -> None:
        """Index a transaction from the stream, saving it first, then wake the waiters."""
        with self._cond:
            if self._index.get(tx.tx_id) is not None:
                return  # replayed after a reconnect
            if self._resume is not None:
                try:
                    self._resume.append([tx])
                except OSError as exc:
                    log.warning(
                        "not saving the Fabric index any more (%s): %s", self._resume.path, exc
                    )
                    self._resume = None
            self._index.add(tx)
            self._cond.notify_all()
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("delivered %s %s block=%d t=%.4f", tx.tx_id[:12], _kinds(tx.records),
                        tx.block, time.time())  # fmt: skip

    def _set_stream_error(self, error: Exception | None) -> None:
        with self._cond:
            self._stream_error = error

    def _check_saved(self, saved: Sequence[IndexedTx]) -> None:
        """Drop a resume file whose transactions this channel does not have (a new network)."""
        if self._resume is None:
            return
        if saved:
            known = {item["txId"] for item in self._query(Query())}
            if {tx.tx_id for tx in saved} <= known:
                return
            self._index = EventIndex()
        self._resume.reset(self._index_snapshot())

    def _index_snapshot(self) -> list[IndexedTx]:
        with self._cond:
            return self._index.after(-1)


def _kinds(records: Sequence[Record]) -> str:
    return "+".join(f"{r.kind}@{r.round}" for r in records)


def _well_formed(item: Any) -> bool:
    """An entry of ``metadataGet``: ``{org, record, sha256, ts, txId}`` with the right types."""
    return (
        isinstance(item, dict)
        and isinstance(item.get("record"), dict)
        and all(isinstance(item.get(k), str) for k in ("org", "sha256", "txId"))
        and isinstance(item.get("ts"), int)
    )


def _raise_refusal(error: GatewayError) -> None:
    """Raise the chaincode's rule refusal carried by ``error``, if any."""
    refused = refusal(error)
    if refused is not None:
        raise refused from error
