"""fedchain: cross-silo federated learning coordinated and recorded on a ledger.

The public API. Names that need Flower (the Grid, strategy wrappers, the secure-aggregation
mod) are imported on first use, so ``fedchain pki`` and ``fedchain audit`` start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fedchain.config import Settings, load_settings
from fedchain.errors import (
    ConfigError,
    FedchainError,
    LedgerCorrupted,
    LedgerError,
    RecordError,
    RuleViolation,
    TransportError,
)
from fedchain.ledger import Entry, Ledger, MemoryLedger, MemoryStore, Query, Record, parse_record
from fedchain.pki import Consortium, Identity, init_consortium, load_consortium, load_identity

if TYPE_CHECKING:
    from fedchain.flower import LedgerStrategy, SecureAggregation, secagg_mod
    from fedchain.ledger.audit import audit
    from fedchain.ledger.embedded import EmbeddedLedger
    from fedchain.ledger.factory import open_ledger
    from fedchain.runtime.client import ClientRuntime
    from fedchain.runtime.grid import LedgerGrid

__version__ = "0.1.0"

_LAZY = {
    "LedgerStrategy": "fedchain.flower",
    "SecureAggregation": "fedchain.flower",
    "secagg_mod": "fedchain.flower",
    "audit": "fedchain.ledger.audit",
    "EmbeddedLedger": "fedchain.ledger.embedded",
    "open_ledger": "fedchain.ledger.factory",
    "ClientRuntime": "fedchain.runtime.client",
    "LedgerGrid": "fedchain.runtime.grid",
}

__all__ = [
    "ClientRuntime",
    "ConfigError",
    "Consortium",
    "EmbeddedLedger",
    "Entry",
    "FedchainError",
    "Identity",
    "Ledger",
    "LedgerCorrupted",
    "LedgerError",
    "LedgerGrid",
    "LedgerStrategy",
    "MemoryLedger",
    "MemoryStore",
    "Query",
    "Record",
    "RecordError",
    "RuleViolation",
    "SecureAggregation",
    "Settings",
    "TransportError",
    "__version__",
    "audit",
    "init_consortium",
    "load_consortium",
    "load_identity",
    "load_settings",
    "open_ledger",
    "parse_record",
    "secagg_mod",
]


def __getattr__(name: str) -> Any:
    """Import the Flower-dependent names on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fedchain' has no attribute {name!r}")
