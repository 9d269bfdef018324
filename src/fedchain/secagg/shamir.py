"""Shamir secret sharing of 32-byte secrets over GF(p), p = 2^521 - 1.

A secret (read as a big-endian integer, below 2^256 < p) is the constant term of a random
polynomial of degree t - 1; the share for x-coordinate ``x`` (an organization's 1-based position
in the participant list) is the polynomial's value there, encoded as 66 big-endian bytes. Any t
shares give the secret back by Lagrange interpolation at 0; fewer reveal nothing about it.

:func:`split` draws the coefficients from an injected ``randbytes``; the deterministic core is
:func:`split_with_coefficients`. :func:`reconstruct` checks every share beyond the first t
against the interpolated polynomial, so an inconsistent share is detected, not silently used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fedchain.errors import InternalError, ProtocolError, TooManyDropouts

__all__ = [
    "PRIME",
    "SHARE_BYTES",
    "random_coefficients",
    "reconstruct",
    "split",
    "split_with_coefficients",
]

PRIME = 2**521 - 1
SHARE_BYTES = 66
_FIELD_MASK = PRIME  # 521 one-bits: masking 66 random bytes gives a value in [0, 2^521)


def random_coefficients(count: int, randbytes: Callable[[int], bytes]) -> list[int]:
    """``count`` uniform elements of GF(p), by rejection sampling."""
    out: list[int] = []
    while len(out) < count:
        value = int.from_bytes(randbytes(SHARE_BYTES), "big") & _FIELD_MASK
        if value < PRIME:
            out.append(value)
    return out


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    acc = 0
    for c in reversed(coefficients):
        acc = (acc * x + c) % PRIME
    return acc


def split_with_coefficients(
    secret: bytes, coefficients: Sequence[int], xs: Sequence[int]
) -> dict[int, bytes]:
    """Shares of ``secret`` at ``xs`` for the polynomial ``secret + c1*x + c2*x^2 + ...``."""
    if len(xs) != len(set(xs)) or any(not 0 < x < PRIME for x in xs):
        raise InternalError("share x-coordinates must be distinct and non-zero")
    if any(not 0 <= c < PRIME for c in coefficients):
        raise InternalError("coefficients must be field elements")
    poly = [int.from_bytes(secret, "big"), *coefficients]
    return {x: _evaluate(poly, x).to_bytes(SHARE_BYTES, "big") for x in xs}


def split(
    secret: bytes, threshold: int, xs: Sequence[int], randbytes: Callable[[int], bytes]
) -> dict[int, bytes]:
    """Shares of ``secret`` at ``xs`` such that any ``threshold`` of them reconstruct it."""
    if not 1 <= threshold <= len(xs):
        raise InternalError(f"threshold {threshold} impossible with {len(xs)} shares")
    if len(secret) * 8 >= PRIME.bit_length():
        raise InternalError("secret too long for the field")
    return split_with_coefficients(secret, random_coefficients(threshold - 1, randbytes), xs)


def _lagrange_at(points: Sequence[tuple[int, int]], x: int) -> int:
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * (x - xj) % PRIME
                den = den * (xi - xj) % PRIME
        total = (total + yi * num * pow(den, -1, PRIME)) % PRIME
    return total


def _decode(x: int, share: bytes) -> tuple[int, int]:
    value = int.from_bytes(share, "big")
    if len(share) != SHARE_BYTES or value >= PRIME or not 0 < x < PRIME:
        raise ProtocolError(f"malformed share at x={x}")
    return x, value


def reconstruct(shares: Mapping[int, bytes], threshold: int, secret_bytes: int = 32) -> bytes:
    """The secret from at least ``threshold`` shares (x-coordinate -> share bytes)."""
    if len(shares) < threshold:
        raise TooManyDropouts(f"{len(shares)} shares, {threshold} needed")
    points = sorted(_decode(x, s) for x, s in shares.items())
    basis, extra = points[:threshold], points[threshold:]
    for x, y in extra:
        if _lagrange_at(basis, x) != y:
            raise ProtocolError(f"share at x={x} is inconsistent with the others")
    secret = _lagrange_at(basis, 0)
    if secret >> (8 * secret_bytes):
        raise ProtocolError("reconstructed value does not fit the secret size")
    return secret.to_bytes(secret_bytes, "big")
