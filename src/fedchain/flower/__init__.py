"""The Flower seam: strategy wrappers and client mods that plug fedchain into Flower apps."""

from fedchain.flower.strategy import LedgerStrategy

__all__ = ["LedgerStrategy"]
