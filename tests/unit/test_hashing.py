"""The shared content hash: every buffer type hashes to hashlib's digest of its bytes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedchain.hashing import HASH_STEP, sha256_hex


@given(data=st.binary(max_size=2000))
def test_bytes_bytearray_and_views_agree_with_hashlib(data: bytes) -> None:
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_hex(data) == expected
    assert sha256_hex(bytearray(data)) == expected
    assert sha256_hex(memoryview(data)) == expected


def test_buffers_larger_than_one_slice_hash_whole() -> None:
    data = bytes(range(256)) * ((HASH_STEP + 4096) // 256)  # crosses a slice boundary
    assert len(data) > HASH_STEP
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_hex(data) == expected
    assert sha256_hex(memoryview(data)) == expected
    assert sha256_hex(bytearray(data)) == expected


def test_typed_and_shaped_views_hash_as_their_flat_bytes() -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert sha256_hex(arr.data) == hashlib.sha256(arr.tobytes()).hexdigest()
    with pytest.raises(TypeError):
        sha256_hex(arr[:, ::2].data)  # not contiguous: a caller bug
