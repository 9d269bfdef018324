"""Flattening a Flower reply into the one vector secure aggregation masks, and back.

The vector an organization masks is its reply's arrays, flattened in the order of the model it
was sent, followed by the reply metrics the round declared (:class:`MaskingSpec`), each scaled
from ``±metric_bound`` into the quantizer's ``±clip`` range. Its weight is the reply's sample
count (``num-examples`` by default). The aggregator turns the unmasked weighted mean back into
arrays with the model's keys, shapes and dtypes, and the metrics into a ``MetricRecord`` -- the
reply a strategy would have computed from plain replies with FedAvg's weighted averaging.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

from fedchain.errors import UpdateRejected
from fedchain.flower.secagg_codec import MaskingSpec
from fedchain.secagg import LocalUpdate

__all__ = ["ArrayLayout", "local_update", "mean_metrics"]


@dataclass(frozen=True)
class ArrayLayout:
    """Keys, shapes and dtypes of a model's arrays, in order."""

    entries: tuple[tuple[str, tuple[int, ...], str], ...]

    @classmethod
    def of(cls, record: ArrayRecord) -> ArrayLayout:
        """The layout of ``record`` (reads metadata only, never the array bytes)."""
        return cls(tuple((key, tuple(a.shape), str(a.dtype)) for key, a in record.items()))

    @property
    def float_dtype(self) -> type[np.floating[Any]]:
        """float32 when every array fits it exactly (half the memory traffic), else float64."""
        small = all(np.dtype(d) in (np.float32, np.float16) for _, _, d in self.entries)
        return np.float32 if small else np.float64

    @property
    def size(self) -> int:
        """Number of values over all arrays."""
        return sum(math.prod(shape) for _, shape, _ in self.entries)

    def check(self, org: str, record: ArrayRecord) -> None:
        """Refuse a reply whose arrays differ in keys or shapes from the model sent."""
        got = [(key, tuple(a.shape)) for key, a in record.items()]
        want = [(key, shape) for key, shape, _ in self.entries]
        if got != want:
            raise UpdateRejected(org, f"reply arrays {got[:4]} differ from the model's layout")

    def flatten_into(self, record: ArrayRecord, out: npt.NDArray[np.floating[Any]]) -> None:
        """Write ``record``'s values, in layout order, into the start of ``out``."""
        offset = 0
        for key, shape, _ in self.entries:
            size = math.prod(shape)
            out[offset : offset + size] = _view(record[key]).reshape(-1)
            offset += size

    def unflatten(self, vector: npt.NDArray[np.float64]) -> ArrayRecord:
        """Arrays with this layout's keys, shapes and dtypes from the start of ``vector``."""
        arrays: dict[str, Array] = {}
        offset = 0
        for key, shape, dtype in self.entries:
            size = math.prod(shape)
            part = vector[offset : offset + size].reshape(shape)
            if np.dtype(dtype).kind in "iub":
                part = np.rint(part)
            arrays[key] = Array(part.astype(dtype))
            offset += size
        return ArrayRecord(arrays)


def _view(array: Array) -> npt.NDArray[Any]:
    """The values of a Flower ``Array`` without copying them out of its ``.npy`` bytes (falls
    back to ``Array.numpy()`` for anything but a plain C-order ``.npy`` payload)."""
    if array.stype == "numpy.ndarray":
        stream = io.BytesIO(array.data)
        readers = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}
        try:
            reader = readers.get(np.lib.format.read_magic(stream))
            shape, fortran, dtype = reader(stream) if reader else ((), True, np.dtype("O"))
        except ValueError:
            return array.numpy()
        if not fortran and not dtype.hasobject:
            count = math.prod(shape)
            return np.frombuffer(array.data, dtype, count, stream.tell()).reshape(shape)
    return array.numpy()


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def local_update(
    org: str, reply: RecordDict, layout: ArrayLayout, spec: MaskingSpec, clip: float
) -> LocalUpdate:
    """The vector and weight ``org`` masks, from its ClientApp's train reply."""
    arrays = list(reply.array_records.values())
    if len(arrays) != 1:
        raise UpdateRejected(org, f"a train reply needs exactly one ArrayRecord, got {len(arrays)}")
    layout.check(org, arrays[0])
    metrics: dict[str, object] = {}
    for record in reply.metric_records.values():
        metrics.update(record)
    weight = _number(metrics.get(spec.weight_key))
    if weight is None or not weight.is_integer():
        raise UpdateRejected(org, f"metric {spec.weight_key!r} must be an integer sample count")
    vector = np.empty(layout.size + len(spec.metric_keys), dtype=layout.float_dtype)
    layout.flatten_into(arrays[0], vector)
    for i, key in enumerate(spec.metric_keys):
        value = _number(metrics.get(key))
        if value is None or not math.isfinite(value):
            raise UpdateRejected(org, f"declared metric {key!r} is missing or not a finite number")
        bounded = min(max(value, -spec.metric_bound), spec.metric_bound)
        vector[layout.size + i] = bounded * clip / spec.metric_bound
    return LocalUpdate(vector, int(weight))


def mean_metrics(
    mean: npt.NDArray[np.float64], layout: ArrayLayout, spec: MaskingSpec, clip: float,
    total_weight: int,
) -> MetricRecord:
    """The weighted means of the declared metrics, plus the weight key = total weight."""
    tail = mean[layout.size :]
    values: dict[str, int | float | list[int] | list[float]] = {
        key: float(tail[i]) * spec.metric_bound / clip for i, key in enumerate(spec.metric_keys)
    }
    values[spec.weight_key] = total_weight
    return MetricRecord(values)
