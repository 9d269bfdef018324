"""Model hashes and reply validation read arrays in place, with the same results as Flower's
``Array.numpy()`` (which copies), and refuse data whose shape differs from the declared one."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from fedchain.errors import UpdateRejected
from fedchain.runtime.arrays import arrays_sha256, encode_arrays, validate_reply_arrays

SAMPLES: dict[str, np.ndarray[Any, Any]] = {
    "matrix": np.random.default_rng(3).standard_normal((5, 7)).astype(np.float32),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    "big-endian": np.arange(6, dtype=">i4"),
    "scalar": np.array(2.5, dtype=np.float16),
    "empty": np.zeros((0, 3), dtype=np.int64),
    "mask": np.array([True, False, True]),
}


def _record() -> ArrayRecord:
    return ArrayRecord({key: Array(value) for key, value in SAMPLES.items()})


def _npy(values: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    return buffer.getvalue()


def test_model_bytes_are_the_arrays_as_flower_decodes_them() -> None:
    record = _record()
    data = encode_arrays(record)
    (size,) = struct.unpack("<Q", data[4:12])
    header = json.loads(data[12 : 12 + size])
    # Oracle: Flower's own (copying) decoder, made contiguous (at least 1-d) and little-endian.
    oracle = [
        np.ascontiguousarray(record[k].numpy(), record[k].numpy().dtype.newbyteorder("<"))
        for k in SAMPLES
    ]
    assert [a["shape"] for a in header["arrays"]] == [list(a.shape) for a in oracle]
    expected = b"".join(a.tobytes() for a in oracle)
    assert data[12 + size :] == expected
    assert arrays_sha256(record) == hashlib.sha256(data).hexdigest()


def test_validation_accepts_the_model_itself_and_refuses_nan() -> None:
    sent = ArrayRecord({"w": Array(np.ones((2, 3), dtype=np.float32))})
    validate_reply_arrays("org2", sent, ArrayRecord({"w": Array(np.zeros((2, 3), np.float32))}))
    poisoned = np.zeros((2, 3), dtype=np.float32)
    poisoned[1, 2] = np.nan
    with pytest.raises(UpdateRejected, match="NaN"):
        validate_reply_arrays("org2", sent, ArrayRecord({"w": Array(poisoned)}))


def test_validation_refuses_data_whose_shape_differs_from_the_declared_one() -> None:
    sent = ArrayRecord({"w": Array(np.ones(4, dtype=np.float32))})
    lying = Array(
        dtype="float32", shape=(4,), stype="numpy.ndarray", data=_npy(np.ones(2, np.float32))
    )
    with pytest.raises(UpdateRejected, match="shape"):
        validate_reply_arrays("org2", sent, ArrayRecord({"w": lying}))


def test_validation_refuses_truncated_data() -> None:
    sent = ArrayRecord({"w": Array(np.ones(4, dtype=np.float32))})
    data = _npy(np.ones(4, np.float32))
    cut = Array(dtype="float32", shape=(4,), stype="numpy.ndarray", data=data[:-4])
    with pytest.raises(UpdateRejected, match="cannot be decoded"):
        validate_reply_arrays("org2", sent, ArrayRecord({"w": cut}))
