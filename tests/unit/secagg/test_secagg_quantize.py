"""The fixed-point encoding: error bound, headroom, clipping, weights, unbiased rounding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedchain.secagg import Quantizer, error_bound


def ring_sum(vectors: list[np.ndarray]) -> np.ndarray:
    total = np.zeros_like(vectors[0])
    for v in vectors:
        total += v  # uint32 wraps modulo 2^32, like the masked sum
    return total


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Quantizer, list[np.ndarray], list[int], int]:
    n = draw(st.integers(1, 30))
    clip = float(np.float32(draw(st.floats(1e-3, 1e3))))
    max_weight = draw(st.integers(1, (2**32 - 1) // n))
    q = Quantizer(n, clip, max_weight, stochastic=draw(st.booleans()))
    m = draw(st.integers(1, n))  # contributors: at most the participants the ring was sized for
    dim = draw(st.integers(1, 20))
    values = st.floats(-2 * clip, 2 * clip, width=32)  # some beyond the clip range
    xs = [draw(hnp.arrays(np.float32, dim, elements=values)) for _ in range(m)]
    weights = [draw(st.integers(1, max_weight)) for _ in range(m)]
    return q, xs, weights, draw(st.integers(0, 2**32))


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_decoded_sum_is_within_the_error_bound(
    scenario: tuple[Quantizer, list[np.ndarray], list[int], int],
) -> None:
    q, xs, weights, seed = scenario
    rng = np.random.default_rng(seed)
    values, total_weight = q.dequantize(
        ring_sum([q.quantize(x, w, rng) for x, w in zip(xs, weights, strict=True)])
    )
    exact = sum(
        w * np.clip(x.astype(np.float64), -q.clip, q.clip) for x, w in zip(xs, weights, strict=True)
    )
    assert total_weight == sum(weights)
    assert np.all(np.abs(values - exact) <= q.error_bound())
    assert q.error_bound() == error_bound(q.n, q.clip, q.max_weight, stochastic=q.stochastic)


@pytest.mark.parametrize("n", [1, 3, 20, 1000])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_extreme_inputs_never_wrap(n: int, sign: float) -> None:
    q = Quantizer(n, 8.0, (2**32 - 1) // n, stochastic=True)
    rng = np.random.default_rng(0)
    x = np.full(3, sign * 8.0, dtype=np.float32)
    values, weight = q.dequantize(ring_sum([q.quantize(x, q.max_weight, rng) for _ in range(n)]))
    assert weight == n * q.max_weight
    exact = n * q.max_weight * 8.0 * sign
    assert np.all(np.sign(values) == sign)
    assert np.all(np.abs(values - exact) <= q.error_bound())


def test_values_beyond_clip_are_clipped() -> None:
    q = Quantizer(3, 1.0, 10, stochastic=False)
    ring = q.quantize_with_noise(np.array([5.0, -5.0, 0.25]), 2, None)
    values, _ = q.dequantize(ring)
    np.testing.assert_allclose(values, [2.0, -2.0, 0.5], atol=q.error_bound())


def test_deterministic_rounding_has_half_the_stochastic_bound() -> None:
    det = Quantizer(10, 1.0, 100, stochastic=False)
    sto = Quantizer(10, 1.0, 100, stochastic=True)
    assert det.error_bound() < 0.51 * sto.error_bound()
    x = np.linspace(-1, 1, 101)
    assert np.array_equal(
        det.quantize(x, 7, np.random.default_rng(1)), det.quantize(x, 7, np.random.default_rng(2))
    )


def test_stochastic_rounding_is_unbiased() -> None:
    q = Quantizer(3, 1.0, 1, stochastic=True)
    x = np.full(200_000, 0.3 / q.scale)  # 0.3 of a quantization step
    values, _ = q.dequantize(q.quantize(x, 1, np.random.default_rng(7)))
    assert abs(values.mean() - x[0]) < 0.01 / q.scale
    assert set(np.round(values * q.scale).astype(int)) == {0, 1}


def test_weight_word_carries_the_weight_and_scales_the_values() -> None:
    q = Quantizer(4, 1.0, 50, stochastic=False)
    ring = q.quantize_with_noise(np.array([0.5]), 40, None)
    assert int(ring[-1]) == 40
    values, weight = q.dequantize(ring)
    assert weight == 40
    assert abs(values[0] - 20.0) <= q.error_bound()


@pytest.mark.parametrize(
    ("x", "weight"),
    [([np.nan], 1), ([np.inf], 1), ([1.0], 0), ([1.0], 51), ([1.0], True), ([1.0], 2.0)],
)
def test_invalid_updates_are_refused(x: list[float], weight: object) -> None:
    q = Quantizer(4, 1.0, 50, stochastic=False)
    with pytest.raises(ValueError):  # noqa: PT011 - the client turns it into UpdateRejected
        q.quantize_with_noise(np.array(x), weight, None)  # type: ignore[arg-type]


def test_stochastic_rounding_needs_noise_of_the_right_shape() -> None:
    q = Quantizer(4, 1.0, 50, stochastic=True)
    with pytest.raises(ValueError, match="uniform"):
        q.quantize_with_noise(np.zeros(3), 1, np.zeros(2))


def test_error_bound_formula_and_magnitude() -> None:
    # n contributors, each off by < 1 step of max_weight * clip / floor((2^31 - 1) / n).
    step = 1000 * 8.0 / ((2**31 - 1) // 20)
    assert error_bound(20, 8.0, 1000) == pytest.approx(20 * step, rel=1e-5)
    assert error_bound(20, 8.0, 1000, stochastic=False) == pytest.approx(10 * step, rel=1e-5)
    # On the weighted mean with equal weights: about n * clip / 2^31 -- below float32 epsilon.
    assert error_bound(20, 8.0, 1000) / (20 * 1000) < 8.0 * np.finfo(np.float32).eps
