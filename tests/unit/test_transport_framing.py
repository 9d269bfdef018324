"""Sans-IO parts of the data plane: headers, chunking, reassembly, the offer/expect registry."""

from __future__ import annotations

import gc
import hashlib
import weakref
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
from fedchain.transport.framing import (
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
    reg.offer(_sha(b"model"), b"model", ["org3"])  # grants accumulate
    assert bytes(reg.open_offer("org3", _sha(b"model"))) == b"model"
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


def test_withdraw_releases_the_offered_bytes() -> None:
    reg = PayloadRegistry(max_payload_bytes=1 << 20)
    model = np.arange(1000, dtype=np.float64)
    digest = sha256_hex(model.tobytes())
    reg.offer(digest, model, ["org2"])  # type: ignore[arg-type]  # any contiguous buffer
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is not None  # the registry holds the one copy
    reg.withdraw(digest)
    gc.collect()
    assert alive() is None
