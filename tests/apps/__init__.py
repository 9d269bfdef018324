"""Flower apps written for the runtime tests (run by real ``fedchain-client`` processes)."""
