"""Canonical model bytes, model hashes, and the validation of replies before aggregation.

A model's hash on the ledger does not depend on Flower's serialization: it is the SHA-256 of
``encode_arrays``, a simple container (``FCM1``, an 8-byte header length, a canonical JSON
header naming each array's key, dtype and shape, then each array's raw little-endian C-order
bytes). The same bytes are what the aggregator stores as ``<models_dir>/<sha256>.bin``, so
``fedchain audit --models`` can check stored models by hashing files.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.lib.format as npy
from flwr.app import Array, ArrayRecord

from fedchain.errors import RecordError, UpdateRejected
from fedchain.hashing import sha256_hex
from fedchain.ledger.canonical import canonical_json, loads

__all__ = [
    "arrays_sha256",
    "decode_arrays",
    "encode_arrays",
    "load_model",
    "save_model",
    "validate_reply_arrays",
]

MAGIC = b"FCM1"
_ALLOWED_DTYPES = frozenset(
    {
        "float16",
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
    }
)


def _little_endian(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def _values(array: Array) -> np.ndarray:
    """The values of ``array``, read in place (read-only) from its ``.npy`` bytes.

    Flower's ``Array.numpy()`` copies them out through ``np.load``: a 40 MB model costs a fresh
    40 MB buffer per call, and the runtime hashes or validates every model it handles. Other
    serializations fall back to ``numpy()``; ValueError/TypeError if the bytes are malformed.
    """
    if array.stype != "numpy.ndarray":
        return array.numpy()
    data = array.data
    stream = io.BytesIO(data)
    version = npy.read_magic(stream)
    if version not in {(1, 0), (2, 0)}:
        return array.numpy()
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran, dtype = read(stream)
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed")
    count = int(np.prod(shape, dtype=np.int64))
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran else "C")


def _chunks(record: ArrayRecord) -> Iterable[bytes | memoryview]:
    arrays = [(key, _little_endian(_values(value))) for key, value in record.items()]
    header = canonical_json(
        {"arrays": [{"name": k, "dtype": a.dtype.name, "shape": list(a.shape)} for k, a in arrays]}
    )
    yield MAGIC + struct.pack("<Q", len(header)) + header
    for _, array in arrays:
        yield array.reshape(-1).data.cast("B")  # flat: a view of C-ordered data


def encode_arrays(record: ArrayRecord) -> bytes:
    """The canonical bytes of a model (an ``ArrayRecord``)."""
    return b"".join(_chunks(record))


def arrays_sha256(record: ArrayRecord) -> str:
    """SHA-256 (hex) of :func:`encode_arrays`, computed without joining the bytes."""
    digest = hashlib.sha256()
    for chunk in _chunks(record):
        digest.update(chunk)
    return digest.hexdigest()


def decode_arrays(data: bytes) -> ArrayRecord:
    """Inverse of :func:`encode_arrays`; refuses anything malformed with ``RecordError``."""
    if data[:4] != MAGIC or len(data) < 12:
        raise RecordError("not a fedchain model file")
    (size,) = struct.unpack("<Q", data[4:12])
    header = loads(data[12 : 12 + size])
    offset, record = 12 + size, ArrayRecord()
    for spec in header["arrays"]:
        dtype = np.dtype(spec["dtype"]).newbyteorder("<")
        count = int(np.prod(spec["shape"], dtype=np.int64))
        end = offset + count * dtype.itemsize
        if end > len(data):
            raise RecordError("model file is truncated")
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        record[spec["name"]] = Array(array.reshape(spec["shape"]))
        offset = end
    if offset != len(data):
        raise RecordError("model file has trailing bytes")
    return record


def save_model(models_dir: Path, record: ArrayRecord) -> str:
    """Store a model as ``<models_dir>/<sha256>.bin`` (atomically) and return its hash."""
    data = encode_arrays(record)
    digest = sha256_hex(data)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / f"{digest}.bin"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return digest


def load_model(models_dir: Path, digest: str) -> ArrayRecord:
    """Load a stored model and check it against ``digest``."""
    path = models_dir / f"{digest}.bin"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordError(f"model {digest[:12]} is not in {models_dir}") from exc
    if sha256_hex(data) != digest:
        raise RecordError(f"{path} does not match its hash")
    return decode_arrays(data)


def validate_reply_arrays(org: str, sent: ArrayRecord, got: ArrayRecord) -> None:
    """Refuse a reply whose arrays differ in keys, shapes or dtypes from the model sent, or
    hold NaN/Inf (G9): such a reply never reaches the strategy; the reason goes on the ledger.

    Dtype, shape and finiteness are those of the values decoded from the bytes, as a strategy
    will read them (``Array.numpy()``), not only the dtype and shape the sender declared: an
    array declared float32 whose ``.npy`` header says complex64 or float64 is refused.
    """
    if list(got.keys()) != list(sent.keys()):
        raise UpdateRejected(org, f"array keys {list(got.keys())[:8]} differ from the model's")
    for key, array in got.items():
        expected = sent[key]
        wanted = f"{expected.dtype}{list(expected.shape)}"
        if array.dtype != expected.dtype or tuple(array.shape) != tuple(expected.shape):
            raise UpdateRejected(
                org, f"array {key}: {array.dtype}{list(array.shape)} instead of {wanted}"
            )
        if array.dtype not in _ALLOWED_DTYPES:
            raise UpdateRejected(org, f"array {key}: dtype {array.dtype} is not allowed")
        try:
            values = _strict_values(array)
        except (ValueError, TypeError) as exc:
            raise UpdateRejected(org, f"array {key} cannot be decoded: {exc}") from exc
        if values.shape != tuple(array.shape):
            raise UpdateRejected(org, f"array {key}: its data has shape {list(values.shape)}")
        if _little(values.dtype) != _little(_values(expected).dtype):
            raise UpdateRejected(
                org, f"array {key}: its bytes hold {values.dtype.name} values, not {wanted}"
            )
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            raise UpdateRejected(org, f"array {key} holds NaN or Inf")


def _little(dtype: np.dtype) -> np.dtype:
    """``dtype`` in little-endian byte order (a byte-swapped array holds the same values)."""
    return dtype.newbyteorder("<")


def _strict_values(array: Array) -> np.ndarray:
    """The values of a peer's ``array`` exactly as its bytes encode them: ``.npy`` version 1 or
    2 only, no objects, no bytes missing or left over (ValueError/TypeError otherwise)."""
    if array.stype != "numpy.ndarray":
        raise TypeError(f"serialization {array.stype!r} is not numpy.ndarray")
    data = array.data
    stream = io.BytesIO(data)
    version = npy.read_magic(stream)
    if version not in {(1, 0), (2, 0)}:
        raise ValueError(f".npy version {version} is not accepted")
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran, dtype = read(stream)
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"dtype {dtype} is not a plain numeric dtype")
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - stream.tell() != count * dtype.itemsize:
        raise ValueError(f"{len(data) - stream.tell()} data bytes for {count} x {dtype}")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran else "C")
