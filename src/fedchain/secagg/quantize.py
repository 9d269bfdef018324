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

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Quantizer", "error_bound"]

_INT31 = 2**31 - 1
_FLOAT_SLACK = 2.0**-20  # float64 error of s*w*x and v+u, in steps (|v| <= 2^31 -> ~2^-21)


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
        size = np.size(x)
        noise = rng.random(size) if self.stochastic else None
        return self.quantize_with_noise(x, weight, noise)

    def quantize_with_noise(
        self, x: npt.ArrayLike, weight: int, noise: npt.NDArray[np.float64] | None
    ) -> npt.NDArray[np.uint32]:
        """Deterministic core of :meth:`quantize`: ``noise`` holds the uniforms in [0, 1).

        Raises ``ValueError`` for non-finite values or a weight outside ``[1, max_weight]``.
        """
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | np.integer)
            or not (1 <= weight <= self.max_weight)
        ):
            raise ValueError(f"weight must be an integer in [1, {self.max_weight}], got {weight}")
        v = np.array(x, dtype=np.float64).ravel()
        if not np.isfinite(v).all():
            raise ValueError("update contains NaN or infinite values")
        np.clip(v, -self.clip, self.clip, out=v)
        v *= self.scale * int(weight)
        if self.stochastic:
            if noise is None or noise.shape != v.shape:
                raise ValueError("stochastic rounding needs one uniform per coordinate")
            v += noise
            np.floor(v, out=v)
        else:
            np.rint(v, out=v)
        np.clip(v, -self.bound, self.bound, out=v)  # float error only: keeps the headroom exact
        out = np.empty(v.size + 1, dtype=np.uint32)
        out[:-1] = v.astype(np.int32).view(np.uint32)
        out[-1] = weight
        return out

    def dequantize(self, total: npt.NDArray[np.uint32]) -> tuple[npt.NDArray[np.float64], int]:
        """Decode a ring sum into ``(weighted sum as float64, total weight)``."""
        values = np.ascontiguousarray(total[:-1]).view(np.int32).astype(np.float64)
        values /= self.scale
        return values, int(total[-1])
