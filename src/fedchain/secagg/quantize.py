"""Fixed-point encoding of weighted float updates into the ring Z_{2^32}.

An organization with update ``x`` (``dim`` floats) and integer weight ``w`` (its sample count,
``1 <= w <= max_weight``) encodes, per coordinate::

    q_j = R(s * w * clip(x_j, -c, c))   as a signed integer in [-A, A], stored mod 2^32

followed by one extra word holding ``w`` itself. ``A = floor((2^31 - 1) / n)`` for ``n``
participants and ``s = A / (max_weight * c)``, so any sum of at most ``n`` encodings stays in
``[-(2^31 - 1), 2^31 - 1]`` (read back as int32) and the weights sum below 2^32: nothing can
wrap. Summing the ring vectors of the contributors therefore yields ``sum_i w_i x_i`` (scaled
by ``s``) and the total weight ``sum_i w_i`` -- and nothing about any single ``w_i``.

``R`` is stochastic rounding (``floor(v + u)``, ``u`` uniform in [0, 1), unbiased) or
round-half-even. Per contributor the rounding error is below 1 (stochastic) or at most 1/2
(deterministic) quantization step ``1/s``; :func:`error_bound` adds them up for ``n``
contributors, plus a floating-point slack far below one step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Quantizer", "error_bound"]

_INT31 = 2**31 - 1
_FLOAT_SLACK = 2.0**-20  # float64 error of s*w*x and v+u, in steps (|v| <= 2^31 -> ~2^-21)
_CHUNK = 1 << 16  # values per encoding step: the 512 KiB float64 work buffers stay in L2

# Stochastic-rounding noise for the coordinates [start, start + count).
_Noise = Callable[[int, int], npt.NDArray[np.float64]]


def _flat(x: npt.ArrayLike) -> npt.NDArray[Any]:
    """``x`` as a 1-D array; numeric input is converted to float64 later, chunk by chunk."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        arr = np.asarray(arr, dtype=np.float64)  # objects, strings...: convert as before, once
    return arr.reshape(-1)


def _require_finite(src: npt.NDArray[Any]) -> None:
    for start in range(0, src.size, _CHUNK):
        if not np.isfinite(src[start : start + _CHUNK].astype(np.float64)).all():
            raise ValueError("update contains NaN or infinite values")


def _rng_noise(rng: np.random.Generator, size: int) -> _Noise:
    """Draws from ``rng`` into one reused buffer; chunks must be asked for in order."""
    buf = np.empty(min(size, _CHUNK), dtype=np.float64)

    def draw(start: int, count: int) -> npt.NDArray[np.float64]:
        return rng.random(out=buf[:count])

    return draw


def _per_client_bound(n: int) -> int:
    return _INT31 // n


def error_bound(n: int, clip: float, max_weight: int, *, stochastic: bool = True) -> float:
    """Largest absolute error, per coordinate, of the dequantized weighted sum.

    Compared with the exact ``sum_i w_i * clip(x_i)`` over at most ``n`` contributors when the
    ring was sized for ``n`` participants. Divide by the total weight for the error on the
    weighted mean: roughly ``n * clip * (max_weight / mean weight) / 2^31``.
    """
    step = max_weight * clip / _per_client_bound(n)
    rounding = 1.0 if stochastic else 0.5
    return n * (rounding + _FLOAT_SLACK) * step + n * max_weight * clip * 2.0**-45


@dataclass(frozen=True)
class Quantizer:
    """Encodes one organization's weighted update and decodes the ring sum."""

    n: int
    clip: float
    max_weight: int
    stochastic: bool = True

    @property
    def bound(self) -> int:
        """A: the largest magnitude of one encoded coordinate."""
        return _per_client_bound(self.n)

    @property
    def scale(self) -> float:
        """s: quantization steps per unit of weighted value."""
        return self.bound / (self.max_weight * self.clip)

    def error_bound(self) -> float:
        """:func:`error_bound` for this quantizer's parameters."""
        return error_bound(self.n, self.clip, self.max_weight, stochastic=self.stochastic)

    def quantize(
        self, x: npt.ArrayLike, weight: int, rng: np.random.Generator
    ) -> npt.NDArray[np.uint32]:
        """Encode ``x`` with ``weight``; ``rng`` draws the stochastic-rounding noise."""
        self._check_weight(weight)
        src = _flat(x)
        # Chunk by chunk, in coordinate order: exactly the uniforms one rng.random(size) gives.
        return self._encode(src, weight, _rng_noise(rng, src.size) if self.stochastic else None)

    def quantize_with_noise(
        self, x: npt.ArrayLike, weight: int, noise: npt.NDArray[np.float64] | None
    ) -> npt.NDArray[np.uint32]:
        """Deterministic core of :meth:`quantize`: ``noise`` holds the uniforms in [0, 1).

        Raises ``ValueError`` for non-finite values or a weight outside ``[1, max_weight]``.
        """
        self._check_weight(weight)
        src = _flat(x)
        if not self.stochastic:
            return self._encode(src, weight, None)
        if noise is None or noise.shape != src.shape:
            _require_finite(src)  # a non-finite update is reported first
            raise ValueError("stochastic rounding needs one uniform per coordinate")
        given = noise
        return self._encode(src, weight, lambda start, count: given[start : start + count])

    def _check_weight(self, weight: int) -> None:
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | np.integer)
            or not (1 <= weight <= self.max_weight)
        ):
            raise ValueError(f"weight must be an integer in [1, {self.max_weight}], got {weight}")

    def _encode(
        self, src: npt.NDArray[Any], weight: int, noise: _Noise | None
    ) -> npt.NDArray[np.uint32]:
        """The encoding of the flat ``src``, one cache-sized chunk at a time.

        Every step is elementwise, so the words are bit-identical to whole-array processing;
        only a chunk of float64 work space is live instead of several full-size temporaries.
        """
        factor = self.scale * int(weight)
        out = np.empty(src.size + 1, dtype=np.uint32)
        words = out[:-1].view(np.int32)
        buf = np.empty(min(src.size, _CHUNK), dtype=np.float64)
        for start in range(0, src.size, _CHUNK):
            v = buf[: min(_CHUNK, src.size - start)]
            np.copyto(v, src[start : start + v.size], casting="unsafe")
            if not np.isfinite(v).all():
                raise ValueError("update contains NaN or infinite values")
            np.clip(v, -self.clip, self.clip, out=v)
            v *= factor
            if noise is not None:
                v += noise(start, v.size)
                np.floor(v, out=v)
            else:
                np.rint(v, out=v)
            np.clip(v, -self.bound, self.bound, out=v)  # float error only: keeps the headroom exact
            np.copyto(words[start : start + v.size], v, casting="unsafe")
        out[-1] = weight
        return out

    def dequantize(self, total: npt.NDArray[np.uint32]) -> tuple[npt.NDArray[np.float64], int]:
        """Decode a ring sum into ``(weighted sum as float64, total weight)``."""
        values = np.ascontiguousarray(total[:-1]).view(np.int32).astype(np.float64)
        values /= self.scale
        return values, int(total[-1])
