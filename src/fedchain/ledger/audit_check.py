"""The per-entry half of audit that needs no ordering: hash, body, columns, signature.

:func:`check_rows` runs either inline or in worker processes (a process pool: ECDSA verification
is ~100 µs and Python's GIL would serialise threads), returning for each good row what the
sequential half (chain links, certificate chain, write rules) needs. Failures come back as plain
``(seq, reason)`` tuples because exceptions with extra constructor arguments do not pickle.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fedchain.errors import RecordError, SignatureError
from fedchain.ledger.chain import decode_parts
from fedchain.pki.signing import verify_signature

__all__ = ["CHUNK", "Checked", "Failure", "Row", "check_rows", "checked_stream"]

CHUNK: Final = 512
#: Below this many entries, starting worker processes (~0.3 s) costs more than it saves.
PARALLEL_MIN: Final = 4096
Row = tuple[Any, ...]  # seq, hash, body, sig, kind, org, run, round, task
Failure = tuple[int, str]


#: What the sequential half needs of a good row: seq, prev, ts, signer org, certificate
#: SHA-256, where the record's bytes end in the body and whether C ``json`` parses them
#: exactly (:class:`~fedchain.ledger.chain.Parts`). Only scalars: this crosses a process
#: boundary for every entry, and pickling record data costs more than parsing it again.
Checked = tuple[int, str, int, str, str, int, bool]
Result = tuple[list[Checked], Failure | None]
Batch = tuple[list[Row], list[Checked], Failure | None]
_KEYS: dict[str, ec.EllipticCurvePublicKey | None] = {}
_CERTS: dict[str, bytes] = {}


def init_worker(certs: Mapping[str, bytes]) -> None:
    """Give a worker process the ledger's ``certs`` table (public keys load on first use)."""
    _CERTS.clear()
    _CERTS.update(certs)
    _KEYS.clear()


def _key(cert_sha256: str) -> ec.EllipticCurvePublicKey | None:
    if cert_sha256 not in _KEYS:
        key = None
        try:
            der = _CERTS.get(cert_sha256)
            public = x509.load_der_x509_certificate(der).public_key() if der else None
            key = public if isinstance(public, ec.EllipticCurvePublicKey) else None
        except ValueError:
            key = None
        _KEYS[cert_sha256] = key
    return _KEYS[cert_sha256]


def check_rows(rows: list[Row]) -> Result:
    """Check rows in order; stop at the first bad one and return it with the good ones before.

    All bodies of the chunk are decoded first, then all signatures verified: interleaving the
    two evicts each other's working set from the CPU caches and costs ~15%.
    """
    decoded: list[tuple[Checked, ec.EllipticCurvePublicKey]] = []
    failure: Failure | None = None
    for row in rows:
        result = _decode_row(row)
        if isinstance(result, str):
            failure = (row[0], result)
            break
        decoded.append(result)
    good: list[Checked] = []
    for (checked, key), row in zip(decoded, rows, strict=False):
        try:
            verify_signature(key, row[2], row[3])
        except SignatureError as exc:
            return good, (row[0], f"bad signature: {exc}")
        good.append(checked)
    return good, failure


def _decode_row(row: Row) -> tuple[Checked, ec.EllipticCurvePublicKey] | str:
    """The row decoded for the sequential checks with its signer's key, or why it is bad."""
    seq, digest, body, sig = row[0], row[1], row[2], row[3]
    if not all(isinstance(v, bytes) for v in (digest, body, sig)):
        return "the entry's hash, body or signature column is not a BLOB"
    if hashlib.sha256(body).digest() != digest:
        return "the entry hash does not match its body"
    try:
        parts = decode_parts(body)
    except RecordError as exc:
        return f"the entry body is malformed: {exc}"
    data = parts.data
    if parts.seq != seq:
        return f"the body says seq {parts.seq}"
    columns = (data["kind"], data["org"], data.get("run"), data.get("round"), data.get("task"))
    if tuple(row[4:]) != columns:
        return "the indexed columns disagree with the entry body"
    key = _key(parts.cert_sha256)
    if key is None:
        return f"signer certificate {parts.cert_sha256[:12]} is not stored or unusable"
    return (seq, parts.prev, parts.ts, parts.org, parts.cert_sha256, parts.end, parts.exact), key


def _chunks(rows: Iterable[Row]) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def checked_stream(
    rows: Iterable[Row], certs: Mapping[str, bytes], *, workers: int, total: int
) -> Iterator[Batch]:
    """``(rows, checked, failure)`` chunk by chunk, in ledger order.

    With ``workers > 1`` and at least :data:`PARALLEL_MIN` entries, chunks go to a process
    pool, at most a few chunks ahead of the consumer so memory stays bounded whatever the
    ledger size. Workers are forked when this process runs a single thread (instant), spawned
    otherwise (forking a multi-threaded process is unsafe).
    """
    init_worker(certs)  # inline checks, and the fallback if the pool breaks
    if workers <= 1 or total < PARALLEL_MIN:
        for chunk in _chunks(rows):
            yield (chunk, *check_rows(chunk))
        return
    method = "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context(method),
        initializer=init_worker, initargs=(dict(certs),),
    )  # fmt: skip
    window: deque[tuple[list[Row], Future[Result]]] = deque()
    broken = False
    try:
        for chunk in _chunks(rows):
            if broken:
                yield (chunk, *check_rows(chunk))
                continue
            window.append((chunk, pool.submit(check_rows, chunk)))
            while window and (len(window) > 2 * workers + 2 or broken):
                batch, broken = _result(*window.popleft())
                yield batch
        while window:
            yield _result(*window.popleft())[0]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _result(chunk: list[Row], future: Future[Result]) -> tuple[Batch, bool]:
    """A worker's result, or the same check done here if the pool broke (a worker could not
    start, e.g. no importable ``__main__`` for spawn); the flag says it broke."""
    try:
        return (chunk, *future.result()), False
    except BrokenProcessPool:
        return (chunk, *check_rows(chunk)), True
