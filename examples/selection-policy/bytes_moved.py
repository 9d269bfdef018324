"""Bytes moved by a run, with and without its selection policy, read from the ledger alone.

    fedchain ledger show --ledger fedchain-demo/ledger.sqlite --json | python bytes_moved.py

Every ``task`` record lists each recipient's ``payload_size`` (what the aggregator sent), every
``update`` record announces its ``update_size`` before anything is uploaded, and the
``selection`` record names the organizations whose updates the aggregator then received. So
the ledger says both what moved and what would have moved had every announced update been
taken. ``--run RUN`` picks a run (default: the last one on the ledger); ``--json`` prints the
totals as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import Any


def totals(entries: list[dict[str, Any]], run: str | None = None) -> dict[str, Any]:
    """Per-round and total bytes of ``run`` from ``fedchain ledger show --json`` entries."""
    records = [e["record"] for e in entries]
    runs = [r["run"] for r in records if r["kind"] == "run"]
    if not runs:
        raise SystemExit("error: the ledger holds no run")
    run = run or runs[-1]
    sent: dict[str, int] = {}
    rounds: dict[str, int] = {}
    announced: dict[str, dict[str, int]] = defaultdict(dict)
    selected: dict[str, list[str]] = {}
    for r in (r for r in records if r.get("run") == run):
        if r["kind"] == "task":
            sent[r["task"]] = sum(x["payload_size"] for x in r["recipients"])
            rounds[r["task"]] = r["round"]
        elif r["kind"] == "update" and r["status"] == "ok":
            announced[r["task"]][r["org"]] = r["update_size"]
        elif r["kind"] == "selection":
            selected[r["task"]] = r["selected"]
    per_round: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for task, round_ in rounds.items():
        sizes = announced.get(task, {})
        row = per_round[round_]
        row["sent"] += sent[task]
        row["announced_updates"] += len(sizes)
        row["announced_bytes"] += sum(sizes.values())
        row["received_updates"] += len(selected.get(task, []))
        row["received_bytes"] += sum(sizes[o] for o in selected.get(task, []) if o in sizes)
    rows = {k: dict(v) for k, v in sorted(per_round.items())}
    total = {key: sum(row[key] for row in rows.values()) for key in next(iter(rows.values()))}
    with_selection = total["sent"] + total["received_bytes"]
    without = total["sent"] + total["announced_bytes"]
    uploads = total["received_bytes"] / max(total["announced_bytes"], 1)
    return {"run": run, "rounds": rows, "total": total, "bytes_with_selection": with_selection,
            "bytes_without_selection": without, "ratio": with_selection / without,
            "upload_ratio": uploads}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="the run (default: the ledger's last)")
    parser.add_argument("--json", action="store_true", help="print the totals as JSON")
    args = parser.parse_args()
    result = totals(json.load(sys.stdin), args.run)
    if args.json:
        print(json.dumps(result))
        return
    print(f"run {result['run']}")
    print("round  models sent  updates announced      updates received")
    for round_, row in result["rounds"].items():
        print(f"{round_:>5}  {row['sent']:>9} B  {row['announced_updates']:>2} = "
              f"{row['announced_bytes']:>9} B  {row['received_updates']:>2} = "
              f"{row['received_bytes']:>9} B")  # fmt: skip
    print(f"bytes moved with selection:    {result['bytes_with_selection']:>10}")
    print(f"bytes moved without selection: {result['bytes_without_selection']:>10}")
    print(f"with / without: {result['ratio']:.3f} (updates received / announced: "
          f"{result['upload_ratio']:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
