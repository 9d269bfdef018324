"""Mask expansion: AES-256-CTR keyed by a full 256-bit seed, read as little-endian uint32.

A mask for seed ``s`` and length ``L`` is the first ``4 * L`` bytes of the AES-256-CTR
keystream under key ``s`` with a zero initial counter block, viewed as ``<u4`` words. Each seed
keys exactly one mask, so the fixed counter block is never reused with another plaintext.

:func:`apply_masks` adds or subtracts many masks into one accumulator in place. It walks the
accumulator in cache-sized chunks and, for each chunk, advances every seed's keystream into one
reusable buffer: no mask is ever materialised whole, nothing is allocated per mask, and uint32
arithmetic wraps modulo 2^32 as the ring requires.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from fedchain.errors import InternalError

__all__ = ["SEED_BYTES", "Drbg", "apply_masks", "expand_mask", "keystream"]

SEED_BYTES = 32
_COUNTER0 = bytes(16)
_CHUNK = 1 << 20  # bytes per step of apply_masks: fits in L2 alongside one accumulator chunk
_WORD = np.dtype("<u4")


def _encryptor(seed: bytes) -> CipherContext:
    if len(seed) != SEED_BYTES:
        raise InternalError(f"a mask seed must be {SEED_BYTES} bytes, got {len(seed)}")
    return Cipher(algorithms.AES(seed), modes.CTR(_COUNTER0)).encryptor()


def keystream(seed: bytes, nbytes: int) -> bytes:
    """The first ``nbytes`` of the AES-256-CTR keystream under ``seed``."""
    return _encryptor(seed).update(bytes(nbytes))


def expand_mask(seed: bytes, length: int) -> npt.NDArray[np.uint32]:
    """The mask of ``length`` uint32 words for ``seed`` (a fresh array)."""
    return np.frombuffer(keystream(seed, 4 * length), dtype=_WORD).astype(np.uint32)


def apply_masks(acc: npt.NDArray[np.uint32], masks: Sequence[tuple[bytes, int]]) -> None:
    """Add (sign +1) or subtract (sign -1) the mask of each ``(seed, sign)`` into ``acc``."""
    if acc.dtype != np.uint32 or acc.ndim != 1 or not acc.flags.c_contiguous:
        raise InternalError("the accumulator must be a contiguous 1-D uint32 array")
    if any(sign not in (1, -1) for _, sign in masks):
        raise InternalError("mask signs must be +1 or -1")
    streams = [(_encryptor(seed), sign) for seed, sign in masks]
    if not streams:
        return
    total = 4 * acc.size
    zeros = bytes(_CHUNK)
    buf = bytearray(_CHUNK + 15)  # update_into wants block_size - 1 bytes of slack
    zview = memoryview(zeros)
    for start in range(0, total, _CHUNK):
        n = min(_CHUNK, total - start)
        part = acc[start // 4 : (start + n) // 4]
        for enc, sign in streams:
            enc.update_into(zview[:n], buf)
            words = np.frombuffer(buf, dtype=_WORD, count=n // 4)
            if sign > 0:
                np.add(part, words, out=part)
            else:
                np.subtract(part, words, out=part)


class Drbg:
    """A deterministic random byte generator: the AES-256-CTR keystream of a 32-byte key.

    Used where the protocol needs secret randomness derived from injected entropy (Shamir
    coefficients, the neighbour-graph shuffle), so every run is reproducible from its seed.
    """

    def __init__(self, key: bytes) -> None:
        self._enc = _encryptor(key)

    def randbytes(self, n: int) -> bytes:
        """The next ``n`` bytes of the stream."""
        return self._enc.update(bytes(n))

    def below(self, bound: int) -> int:
        """A uniform integer in ``[0, bound)`` by rejection sampling (no modulo bias)."""
        if bound < 1:
            raise InternalError("bound must be positive")
        nbits = max(1, (bound - 1).bit_length())
        nbytes = (nbits + 7) // 8
        while True:
            value = int.from_bytes(self.randbytes(nbytes), "big") >> (8 * nbytes - nbits)
            if value < bound:
                return value
