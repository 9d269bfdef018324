"""The ledger: record kinds, canonical encoding, write rules, and the backends.

Only metadata goes on the ledger (hashes, sample counts, small metrics, participants, dropouts,
secure-aggregation public keys); models move over the data plane. See ``docs/ledger.md``.
"""

from fedchain.ledger.base import Entry, Ledger, Query, watch
from fedchain.ledger.canonical import canonical_json
from fedchain.ledger.memory import MemoryLedger, MemoryStore
from fedchain.ledger.records import KINDS, MAX_RECORD_BYTES, Record, parse_record
from fedchain.ledger.rules import LedgerState

__all__ = [
    "KINDS",
    "MAX_RECORD_BYTES",
    "Entry",
    "Ledger",
    "LedgerState",
    "MemoryLedger",
    "MemoryStore",
    "Query",
    "Record",
    "canonical_json",
    "parse_record",
    "watch",
]
