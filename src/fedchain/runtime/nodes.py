"""Flower node ids for organizations: stable, derived from the org id, never colliding silently."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from fedchain.errors import InternalError

__all__ = ["NodeMap", "node_id"]


def node_id(org: str) -> int:
    """A positive 63-bit node id derived from the organization id."""
    return int.from_bytes(hashlib.sha256(org.encode()).digest()[:8], "big") >> 1 or 1


class NodeMap:
    """Two-way mapping between organization ids and Flower node ids."""

    def __init__(self, orgs: Iterable[str]) -> None:
        self._by_org = {org: node_id(org) for org in orgs}
        self._by_node = {nid: org for org, nid in self._by_org.items()}
        if len(self._by_node) != len(self._by_org):
            raise InternalError("two organization ids map to the same node id")

    def node(self, org: str) -> int:
        return self._by_org[org]

    def org(self, node: int) -> str:
        return self._by_node[node]

    def __contains__(self, node: object) -> bool:
        return node in self._by_node
