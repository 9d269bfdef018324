"""Removing the masks from the ring sum, once the needed secrets are reconstructed.

For a survivor ``u`` (its masked vector is in the sum) the self-mask seed ``b_u`` is rebuilt
from t seed shares and its mask subtracted. For an organization ``u`` that shared its secrets
but sent no masked vector, its mask private key is rebuilt from t key shares (and checked
against its advertised public key), and the pairwise mask each surviving neighbour ``v`` added
for ``u`` is recomputed and cancelled. Nothing else is reconstructed.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

import numpy as np
import numpy.typing as npt

from fedchain.errors import ProtocolError
from fedchain.secagg.config import RoundConfig
from fedchain.secagg.keys import PublicKeys, pairwise_seed, x25519_public
from fedchain.secagg.prg import apply_masks
from fedchain.secagg.shamir import reconstruct

__all__ = ["recover_sum"]


def recover_sum(
    config: RoundConfig,
    acc: npt.NDArray[np.uint32],
    keys: Mapping[str, PublicKeys],
    *,
    survivors: Set[str],
    dropped: Set[str],
    seed_shares: Mapping[str, Mapping[int, bytes]],
    key_shares: Mapping[str, Mapping[int, bytes]],
    omitted: Set[tuple[str, str]] = frozenset(),
) -> None:
    """Turn ``acc`` (sum of the survivors' masked vectors) into their unmasked sum, in place.

    ``omitted``: ``(survivor, dropped)`` pairs whose pairwise mask the survivor never added
    (it accused the other); a dropped organization no survivor masked with is not rebuilt.
    """
    t = config.threshold
    masks: list[tuple[bytes, int]] = []
    for u in sorted(survivors):
        masks.append((reconstruct(seed_shares.get(u, {}), t), -1))
    for u in sorted(dropped):
        masked_with = [v for v in sorted(config.neighbours[u] & survivors) if (v, u) not in omitted]
        if not masked_with:
            continue
        private = reconstruct(key_shares.get(u, {}), t)
        if x25519_public(private) != keys[u].mask:
            raise ProtocolError(f"the mask key rebuilt for {u} does not match its public key")
        for v in masked_with:
            seed = pairwise_seed(private, keys[v].mask, config.digest, u, v)
            # v added this mask with sign +1 if v sorts before u; take it back out.
            masks.append((seed, -1 if v < u else 1))
    apply_masks(acc, masks)
