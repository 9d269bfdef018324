"""The Flower seam: strategy wrappers and client mods that plug fedchain into Flower apps."""

from fedchain.flower.anchor import KeyAnchor, LedgerAnchor, anchored, current_anchor
from fedchain.flower.local_grid import LocalGrid
from fedchain.flower.secagg_mod import make_secagg_mod, secagg_mod
from fedchain.flower.secagg_strategy import SecureAggregation
from fedchain.flower.strategy import LedgerStrategy

__all__ = [
    "KeyAnchor",
    "LedgerAnchor",
    "LedgerStrategy",
    "LocalGrid",
    "SecureAggregation",
    "anchored",
    "current_anchor",
    "make_secagg_mod",
    "secagg_mod",
]
