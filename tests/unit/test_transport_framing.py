"""Sans-IO parts of the data plane: headers, chunking, reassembly, the offer/expect registry."""

from __future__ import annotations

import gc
import hashlib
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import CancelledError

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedchain.errors import (
    HashMismatch,
    PayloadError,
    PayloadTooLarge,
    PeerAuthError,
    ProtocolError,
    TransportError,
)
from fedchain.hashing import sha256_hex
from fedchain.transport.chunks import SharedChunks
from fedchain.transport.framing import (
    HEADER_LIMIT,
    FetchRequest,
    PayloadBuffer,
    PayloadHeader,
    UploadHeader,
    as_byte_view,
    decode_header,
    encode_header,
    iter_chunks,
)
from fedchain.transport.registry import PayloadRegistry


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@given(data=st.binary(max_size=5000), chunk=st.integers(min_value=1, max_value=700))
def test_chunks_reassemble_to_the_same_bytes(data: bytes, chunk: int) -> None:
    buffer = PayloadBuffer(_sha(data), len(data))
    pieces = list(iter_chunks(as_byte_view(data), chunk))
    assert all(0 < len(p) <= chunk for p in pieces)
    for piece in pieces:
        buffer.write(piece)
    assert buffer.finish() == data


@given(
    data=st.binary(max_size=5000),
    chunk=st.integers(min_value=1, max_value=700),
    readers=st.integers(min_value=1, max_value=4),
)
def test_readers_in_step_share_each_chunk_and_keep_at_most_one(
    data: bytes, chunk: int, readers: int
) -> None:
    shared = SharedChunks(bytearray(data), chunk)
    open_ = [iter(shared) for _ in range(readers)]
    pieces: list[list[bytes]] = [[] for _ in open_]
    for _ in range(shared.count):
        for reader, got in zip(open_, pieces, strict=True):
            got.append(next(reader))
            assert shared.held <= 1
    assert all(next(reader, None) is None for reader in open_)
    assert b"".join(pieces[0]) == data
    assert all(0 < len(piece) <= chunk for piece in pieces[0])
    for other in pieces[1:]:
        assert all(a is b for a, b in zip(pieces[0], other, strict=True))
    assert shared.copies == shared.count  # one copy of each chunk, whatever the readers
    assert shared.held == 0


def test_chunks_kept_for_a_stalled_reader_are_capped_and_dropped_when_it_goes() -> None:
    data = bytes(range(256)) * 40  # 10240 bytes: 11 chunks
    shared = SharedChunks(data, 1000, max_held=4)
    stalled, late = iter(shared), iter(shared)
    fast = list(shared)
    assert shared.held == 4  # kept for the readers still at the start, up to the cap
    assert shared.copies == 11
    behind = list(late)
    assert behind == fast
    assert [a is b for a, b in zip(fast, behind, strict=True)] == [True] * 4 + [False] * 7
    assert shared.copies == 18  # past the cap, each reader copies for itself
    assert shared.held == 4  # the stalled reader still needs them
    stalled.close()
    assert shared.held == 0
    again = list(shared)  # after everyone passed: copied anew, same bytes
    assert again == fast
    assert again[0] is not fast[0]
    ahead, unstarted = iter(shared), iter(shared)
    next(ahead)
    assert shared.held == 1  # chunk 0, for the reader that has not started
    del unstarted  # dropped without close: its place goes with it
    assert shared.held == 0


def test_shared_chunks_hold_the_source_by_reference_only() -> None:
    model = np.arange(1000, dtype=np.float64)  # 8000 bytes
    shared = SharedChunks(model, 3000)  # type: ignore[arg-type]  # any contiguous buffer
    alive = weakref.ref(model)
    del model
    assert [len(piece) for piece in shared] == [3000, 3000, 2000]
    gc.collect()
    assert alive() is not None
    assert shared.held == 0
    del shared
    gc.collect()
    assert alive() is None
    small = b"fits in one chunk"
    assert next(iter(SharedChunks(small, 1 << 20))) is small  # nothing to copy
    assert list(SharedChunks(b"", 4)) == []
    with pytest.raises(PayloadError):
        SharedChunks(b"x", 0)
    with pytest.raises(PayloadError):
        SharedChunks(b"x", 1, max_held=-1)


def test_concurrent_readers_get_one_copy_of_each_chunk() -> None:
    data = np.random.default_rng(7).bytes(64 * 1024 + 5)
    shared = SharedChunks(data, 1024, max_held=100)  # room for any spread of the threads
    readers = [iter(shared) for _ in range(8)]  # open together, as fetches of one round
    start = threading.Barrier(len(readers))
    reads: list[list[bytes]] = []

    def read(reader: Iterator[bytes]) -> None:
        start.wait()
        reads.append(list(reader))

    threads = [threading.Thread(target=read, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 8
    assert b"".join(reads[0]) == data
    for other in reads[1:]:
        assert all(a is b for a, b in zip(reads[0], other, strict=True))
    assert shared.copies == shared.count
    assert shared.held == 0


def test_buffer_refuses_extra_short_and_wrong_bytes() -> None:
    buffer = PayloadBuffer(_sha(b"abcd"), 4)
    buffer.write(b"abc")
    with pytest.raises(PayloadTooLarge):
        buffer.write(b"de")
    with pytest.raises(ProtocolError):
        buffer.finish()
    wrong = PayloadBuffer(_sha(b"abcd"), 4)
    wrong.write(b"abce")
    with pytest.raises(HashMismatch):
        wrong.finish()


def test_views_are_flat_read_only_and_hash_like_hashlib() -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    view = as_byte_view(arr)  # type: ignore[arg-type]
    assert (view.format, view.ndim, len(view), view.readonly) == ("B", 1, 48, True)
    assert sha256_hex(arr.tobytes()) == _sha(arr.tobytes())
    with pytest.raises(PayloadError):
        as_byte_view(arr[:, ::2])  # type: ignore[arg-type]  # not contiguous


def test_headers_round_trip_and_reject_malformed_input() -> None:
    digest = _sha(b"x")
    assert UploadHeader.decode(UploadHeader("org2", digest, 5, "t").encode()) == UploadHeader(
        "org2", digest, 5, "t"
    )
    assert PayloadHeader.decode(PayloadHeader(digest, 0).encode()).size == 0
    bad = [
        b"\xff",
        b"[]",
        encode_header("fetch", org="o", sha256=digest, max_size=1)[:-1],
        encode_header("upload", org="o", sha256=digest, size=1, task="t"),  # wrong kind
        encode_header("fetch", org="", sha256=digest, max_size=1),
        encode_header("fetch", org="o", sha256=digest.upper(), max_size=1),
        encode_header("fetch", org="o", sha256=digest, max_size=-1),
        b'{"kind":"fetch","v":2,"org":"o","max_size":1,"sha256":"' + digest.encode() + b'"}',
        b'{"kind":"fetch","v":1,"org":"o","max_size":true,"sha256":"' + digest.encode() + b'"}',
        b" " * 20_000,
    ]
    for raw in bad:
        with pytest.raises(ProtocolError):
            FetchRequest.decode(raw)
    assert decode_header(encode_header("pong", org="o"), "pong")["org"] == "o"


def test_registry_offers_only_to_the_named_orgs() -> None:
    reg = PayloadRegistry(max_payload_bytes=10)
    reg.offer(_sha(b"model"), b"model", ["org2"])
    reg.offer(_sha(b"model"), bytearray(b"model"), ["org3"])  # grants accumulate
    assert b"".join(reg.open_offer("org3", _sha(b"model"))) == b"model"
    assert reg.open_offer("org2", _sha(b"model")) is reg.open_offer("org3", _sha(b"model"))
    unshared = PayloadRegistry(max_payload_bytes=10, chunk_size=2, shared_chunks=0)
    unshared.offer(_sha(b"model"), bytearray(b"model"), ["org2"])
    payload = unshared.open_offer("org2", _sha(b"model"))
    one, two = iter(payload), iter(payload)
    assert next(one) == next(two) == b"mo"
    assert payload.copies == 2  # nothing shared: each reader copies its own
    with pytest.raises(PayloadError):
        PayloadRegistry(max_payload_bytes=10, shared_chunks=-1)
    with pytest.raises(PeerAuthError):
        reg.open_offer("org1", _sha(b"model"))
    with pytest.raises(PayloadError):
        reg.open_offer("org2", _sha(b"other"))
    with pytest.raises(PayloadTooLarge):
        reg.offer(_sha(b"x" * 11), b"x" * 11, ["org2"])
    reg.clear()
    assert reg.offered() == frozenset()


def test_registry_upload_lifecycle() -> None:
    reg = PayloadRegistry(max_payload_bytes=100)
    digest = _sha(b"update")
    with pytest.raises(PeerAuthError):
        reg.begin_upload("org2", digest, 6)
    future = reg.expect("org2", digest)
    assert reg.expect("org2", digest) is future
    sink = reg.begin_upload("org2", digest, 6)
    with pytest.raises(TransportError):  # one transfer at a time
        reg.begin_upload("org2", digest, 6)
    sink.write(b"upd")
    sink.abort()  # broken transfer: the slot reopens
    retry = reg.begin_upload("org2", digest, 6)
    retry.write(b"update")
    retry.finish()
    assert future.result(0) == b"update"
    assert reg.expected() == frozenset()


def test_registry_final_refusals_fail_the_future_and_cancel_withdraws() -> None:
    reg = PayloadRegistry(max_payload_bytes=100)
    digest = _sha(b"update")
    too_big = reg.expect("org2", digest, max_size=3)
    with pytest.raises(PayloadTooLarge):
        reg.begin_upload("org2", digest, 6)
    with pytest.raises(PayloadTooLarge):
        too_big.result(0)
    wrong = reg.expect("org3", digest)
    sink = reg.begin_upload("org3", digest, 6)
    sink.write(b"update"[::-1])
    with pytest.raises(HashMismatch):
        sink.finish()
    with pytest.raises(HashMismatch):
        wrong.result(0)
    waiting = reg.expect("org1", digest)
    running = reg.begin_upload("org1", digest, 6)
    assert waiting.cancel()
    assert reg.expected() == frozenset()
    running.write(b"update")
    with pytest.raises(TransportError, match="withdrawn"):
        running.finish()
    with pytest.raises(CancelledError):
        waiting.result(0)


def test_a_received_upload_is_freed_with_its_last_reference() -> None:
    reg = PayloadRegistry(max_payload_bytes=100)
    digest = _sha(b"update")
    gc.disable()  # freed by reference counting alone, not by a later cyclic collection
    try:
        for received in (True, False):
            future = reg.expect("org2", digest)
            if received:
                sink = reg.begin_upload("org2", digest, 6)
                sink.write(b"update")
                sink.finish()
                del sink
            else:
                future.cancel()
            alive = weakref.ref(future)
            del future
            assert alive() is None
            assert reg.expected() == frozenset()
    finally:
        gc.enable()


def test_withdraw_releases_the_offered_bytes() -> None:
    reg = PayloadRegistry(max_payload_bytes=1 << 20, chunk_size=4096)
    model = np.arange(1000, dtype=np.float64)
    digest = sha256_hex(model.tobytes())
    reg.offer(digest, model, ["org2", "org3"])  # type: ignore[arg-type]  # any buffer
    alive = weakref.ref(model)
    del model
    assert sha256_hex(b"".join(reg.open_offer("org2", digest))) == digest
    gc.collect()
    assert alive() is not None  # the registry holds the one copy
    assert reg.open_offer("org3", digest).held == 0  # and no chunk once nobody reads
    reg.withdraw(digest)
    gc.collect()
    assert alive() is None


def test_a_reader_collected_while_its_payload_is_locked_does_not_deadlock() -> None:
    """The garbage collector may finalize a reader on a thread that is inside ``_take`` with
    the payload's lock held: finalizing must not take that lock."""
    shared = SharedChunks(bytes(range(10)), chunk_size=2, max_held=4)
    reader = iter(shared)
    assert next(reader) == bytes([0, 1])
    finalized = threading.Event()

    def collect_under_lock() -> None:
        with shared._lock:  # as inside _take when a GC pass runs
            reader.__del__()
        finalized.set()

    worker = threading.Thread(target=collect_under_lock, daemon=True)
    worker.start()
    assert finalized.wait(10), "finalizing a reader blocked on the payload's lock"
    assert shared.held == 0  # its place is given up at the next locked call


def test_a_header_nested_past_the_parser_s_stack_is_a_protocol_error() -> None:
    """It raised RecursionError, answered as UNKNOWN instead of INVALID_ARGUMENT."""
    depth = HEADER_LIMIT // 2 - 1  # within the size limit, far past Python's recursion limit
    with pytest.raises(ProtocolError, match="nests too deeply"):
        decode_header(b"[" * depth + b"]" * depth, "fetch")
