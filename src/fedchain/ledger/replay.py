"""Audit any backend by replaying its records through the write rules.

The embedded file has its own, deeper audit (hash chain, signatures: ``ledger.audit``). For
other backends — a Fabric channel, whose blocks and endorsements Fabric itself protects — the
check fedchain adds is the same on every backend: every record, in ledger order, must have been
allowed by the write rules when it was written, and by the organization it names.
"""

from __future__ import annotations

from collections.abc import Iterable

from fedchain.errors import LedgerCorrupted, RuleViolation
from fedchain.ledger.audit_report import RoundSummary, RoundTable
from fedchain.ledger.base import Entry
from fedchain.ledger.rules import LedgerState

__all__ = ["replay", "replay_table"]


def replay(entries: Iterable[Entry]) -> list[RoundSummary]:
    """Re-check every write rule over ``entries``; the per-round table, or LedgerCorrupted
    naming the first entry the rules would have refused."""
    return replay_table(entries).rows()


def replay_table(entries: Iterable[Entry]) -> RoundTable:
    """:func:`replay`, keeping the whole table (its ``model_hashes``: every global model the
    records name, which an audit with model files checks)."""
    state, table = LedgerState(), RoundTable()
    for entry in sorted(entries, key=lambda e: e.seq):
        if entry.record.org != entry.signer:
            raise LedgerCorrupted(
                entry.seq, f"a record of {entry.record.org} written by {entry.signer}"
            )
        try:
            state.admit(entry.record, entry.signer)
        except RuleViolation as exc:
            raise LedgerCorrupted(entry.seq, f"write rule {exc.rule}: {exc.detail}") from exc
        table.add(entry.record)
    return table
