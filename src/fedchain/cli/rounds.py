"""The per-round table of ``fedchain audit``, laid out to stay readable at 80 columns and in a
pipe (where rich assumes 80): one table per run, the run id in its title rather than in a
column, and cells that wrap between items instead of being cut to ``run-…``."""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.table import Table

from fedchain.ledger.audit_report import RoundSummary

__all__ = ["COLUMNS", "MODEL_PREFIX", "round_tables"]

#: Hex digits of a model hash shown (48 bits; ``--json`` has them all).
MODEL_PREFIX = 12


def round_tables(rows: Iterable[RoundSummary], width: int) -> list[Table]:
    """One table per run, in the order the runs first appear, each fitting ``width`` columns."""
    runs: dict[str, list[RoundSummary]] = {}
    for row in rows:
        runs.setdefault(row.run, []).append(row)
    return [_table(run, rounds, width) for run, rounds in runs.items()]


COLUMNS = ("round", "status", "examples", "aggregated", "dropped", "model", "metrics")
_WRAPPING = {"examples", "aggregated", "dropped", "metrics"}  # lists of items
_GAP = 2  # between columns


def _table(run: str, rounds: list[RoundSummary], width: int) -> Table:
    """Each column as wide as its content when that fits; otherwise the item lists wrap one
    item a line (the narrowest each can be) and the metrics take the rest."""
    closed = sum(row.closed for row in rounds)
    table = Table(title=f"run {run}: {len(rounds)} rounds, {closed} closed",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  title_justify="left")  # fmt: skip
    cells = [_cells(row) for row in rounds]
    full = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(COLUMNS)]
    narrow = [
        max([len(name), *(len(item) for row in cells for item in row[i].split(" "))])
        for i, name in enumerate(COLUMNS)
    ]
    squeeze = sum(full) + _GAP * (len(COLUMNS) - 1) > width
    for index, name in enumerate(COLUMNS):
        if name not in _WRAPPING:
            table.add_column(name, justify="right" if name == "round" else "left", no_wrap=True)
        elif squeeze and name != "metrics":
            table.add_column(name, overflow="fold", width=narrow[index])
        else:
            table.add_column(name, overflow="fold", min_width=narrow[index])
    for row in cells:
        table.add_row(*row)
    return table


def _cells(row: RoundSummary) -> list[str]:
    if row.masked:
        examples = "masked"
    else:
        examples = ", ".join(f"{org}={n}" for org, n in sorted(row.num_examples.items())) or "-"
    if row.aggregated and row.aggregated == sorted(row.participants):
        aggregated = "all"
    else:
        aggregated = ", ".join(row.aggregated) or "-"
    rejected = [f"{r['org']} ({r['reason']})" for r in row.rejected]
    errored = [f"{org} (error)" for org in row.errors if org not in row.dropouts]
    dropped = ", ".join([*row.dropouts, *rejected, *errored]) or "-"
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in row.metrics.items()) or "-"
    model = (row.model_sha256 or "-")[:MODEL_PREFIX]
    status = "closed" if row.closed else "open"
    return [str(row.round), status, examples, aggregated, dropped, model, metrics]
