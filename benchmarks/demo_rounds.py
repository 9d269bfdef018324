"""A round's ledger overhead on Fabric: the demo on Fabric next to the demo on the embedded ledger.

    python benchmarks/demo_rounds.py --network /tmp/fab-main/fedchain --rounds 10 --pairs 2

Runs ``fedchain demo --json --rounds N`` with the embedded ledger and with ``--ledger fabric``
alternately (``--pairs`` times each, same app, rounds and 3 organizations), and reports per run:

* ``wall_s``: the whole command, and ``wall_per_round_s`` = wall / N;
* ``round_s``: the median time between consecutive ``closed`` events of the aggregator (steady
  state: no process start-up, no final check);
* ``phases_ms``: the median time of each step of a round, from the aggregator's events;
* for Fabric, from the channel itself: records, transactions and distinct blocks per round, and
  ``block_span``, the block intervals from one round's first task to the next round's (each is
  one sequential block wait: a round's writes depend on each other);
* with ``--trace``: each write's submit -> commit time by kind, the delivery lag to the other
  parties, and one mid-run round's writes with their blocks.

``--no-evaluate`` runs both demos without federated evaluation (the digits app's
``fraction-evaluate`` run config set to 0).

"A round's ledger overhead" = Fabric seconds per round - embedded seconds per round, both from
``round_s`` (and from ``wall_per_round_s``); the load average is recorded before each run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

TRACE_DIR = Path(__file__).resolve().parent / "trace"


def run_demo(
    kind: str, rounds: int, network: Path, workdir: Path, trace: bool = False, evaluate: bool = True
) -> dict[str, Any]:
    command = [sys.executable, "-m", "fedchain.cli.main", "demo", "--json",
               "--rounds", str(rounds), "--workdir", str(workdir)]  # fmt: skip
    if kind == "fabric":
        command += ["--ledger", "fabric", "--network", str(network)]
    env = dict(os.environ)
    if not evaluate:  # the digits app's run config: no federated evaluation
        env["FEDCHAIN_RUN_CONFIG__FRACTION-EVALUATE"] = "0"
    if trace:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TRACE_DIR), env.get("PYTHONPATH")]))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{kind} demo failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    closed = [e["t"] for e in events if e.get("event") == "closed"]
    gaps = [b - a for a, b in itertools.pairwise(closed)]
    result = next(e for e in events if e.get("event") == "result")
    return {
        "phases_ms": phases(events),
        "ledger": kind,
        "load1": round(load, 2),
        "wall_s": round(wall, 2),
        "wall_per_round_s": round(wall / rounds, 3),
        "round_s": round(statistics.median(gaps), 3) if gaps else None,
        "audit_ok": result["audit_ok"],
        "run": result["run"],
        "accuracy": round(result["accuracy"], 3),
        **({"trace": read_trace(workdir / "logs", rounds)} if trace else {}),
    }


def read_trace(logs: Path, rounds: int) -> dict[str, Any]:
    """Per write kind: submit -> commit and submit -> delivered to the writer (ms); the lag
    from the writer's commit to the other parties' event streams; one mid-run round's writes."""
    writes: dict[str, dict[str, Any]] = defaultdict(dict)
    seen: dict[str, dict[str, float]] = defaultdict(dict)
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text().splitlines():
            if not line.startswith("TRACE "):
                continue
            what, tx, *rest = line.split()[1:]
            fields = dict(f.split("=", 1) for f in rest if "=" in f)
            if what == "publish":
                writes[tx].update(writer=path.stem, kinds=rest[0], start=float(fields["start"]),
                                  synced=float(fields["synced"]))  # fmt: skip
            elif what == "committed":
                writes[tx].update(committed=float(fields["t"]), block=int(fields["block"]))
            elif what == "delivered":
                seen[tx][path.stem] = float(fields["t"])
    by_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    lags: list[float] = []
    for tx, w in writes.items():
        if "start" not in w or "committed" not in w:
            continue
        kind = "+".join(k.split("@")[0] for k in w["kinds"].split("+"))
        by_kind[kind]["commit_ms"].append(1000 * (w["committed"] - w["start"]))
        by_kind[kind]["synced_ms"].append(1000 * (w["synced"] - w["start"]))
        lags += [1000 * (t - w["committed"]) for p, t in seen[tx].items() if p != w["writer"]]
    mid = f"@{rounds // 2}"
    complete = [w for w in writes.values() if "start" in w and "committed" in w]
    timeline = sorted((w for w in complete if mid in w["kinds"]), key=lambda w: w["start"])
    t0 = timeline[0]["start"] if timeline else 0.0
    per_kind = {}
    for kind, samples in sorted(by_kind.items()):
        per_kind[kind] = {m: round(statistics.median(v), 1) for m, v in samples.items()}
        per_kind[kind]["n"] = len(samples["commit_ms"])
    lag = {"median": round(statistics.median(lags), 1), "max": round(max(lags), 1)}
    return {
        "per_kind": per_kind,
        "delivery_lag_ms": lag if lags else None,
        "round_timeline": [
            f"{w['writer']:>10} {w['kinds']:<28} block {w['block']:>4} "
            f"start {1000 * (w['start'] - t0):7.1f} commit {1000 * (w['committed'] - t0):7.1f}"
            for w in timeline
        ],
    }


def phases(events: list[dict[str, Any]]) -> dict[str, float]:
    """Median time of each step of a round, from the aggregator's events (ms).

    A round's steps: train task published -> last train update seen -> train selection
    published -> last train reply received -> evaluate task published -> last evaluate update
    seen -> evaluate selection published -> close published (evaluate replies received and
    aggregated on the way) -> the next round's train task published.
    """
    marks: dict[int, dict[str, float]] = defaultdict(dict)
    kind_of: dict[str, str] = {}
    current = ""
    for event in events:
        name, rnd = event.get("event"), event.get("round")
        if rnd is None:
            continue
        if name == "task":
            current = kind_of[event["task"]] = str(event["type"]).split(".")[0]
            marks[rnd][f"{current}.task"] = event["t"]
        elif name == "announced":
            marks[rnd][f"{kind_of.get(event['task'], '?')}.announced"] = event["t"]
        elif name == "selected":
            current = kind_of.get(event["task"], "?")
            marks[rnd][f"{current}.selected"] = event["t"]
        elif name == "received":
            marks[rnd][f"{current}.received"] = event["t"]
        elif name == "closed":
            marks[rnd]["closed"] = event["t"]
    steps = ["train.task", "train.announced", "train.selected", "train.received",
             "evaluate.task", "evaluate.announced", "evaluate.selected", "closed"]  # fmt: skip
    found: dict[str, list[float]] = defaultdict(list)
    for rnd in sorted(marks)[1:-1]:  # steady state: not the first or last round
        row = [(step, marks[rnd][step]) for step in steps if step in marks[rnd]]
        if "train.task" in marks.get(rnd + 1, {}):
            row.append(("next.train.task", marks[rnd + 1]["train.task"]))
        for (a, ta), (b, tb) in itertools.pairwise(row):
            found[f"{a} -> {b}"].append(1000 * (tb - ta))
    return {k: round(statistics.median(v), 1) for k, v in found.items()}


def block_profile(network: Path, run: str) -> dict[str, Any]:
    """Records, transactions and distinct blocks per round of ``run`` on the channel."""
    from fedchain.config import load_settings
    from fedchain.ledger.fabric import unpack_seq
    from fedchain.ledger.factory import open_for_reading

    handle = open_for_reading(load_settings(network / "aggregator.toml"))
    try:
        entries = [e for e in handle.metadata_get() if e.record.run == run]
    finally:
        handle.close()
    per_round: dict[int, list[Any]] = defaultdict(list)
    for entry in entries:
        if entry.record.round is not None:
            per_round[int(entry.record.round)].append(entry)
    first_task = {rnd: min(unpack_seq(e.seq)[0] for e in items if e.record.kind == "task")
                  for rnd, items in per_round.items()}  # fmt: skip
    spans = [first_task[r + 1] - first_task[r] for r in sorted(first_task) if r + 1 in first_task]
    rows = []
    for rnd, items in sorted(per_round.items()):
        blocks = sorted({unpack_seq(e.seq)[0] for e in items})
        txs = {e.hash.split(":")[0] for e in items}
        kinds = Counter(e.record.kind for e in items)
        rows.append({"round": rnd, "records": len(items), "txs": len(txs),
                     "blocks": len(blocks), "kinds": dict(kinds)})  # fmt: skip
    return {
        "records_per_round": statistics.median(r["records"] for r in rows),
        "txs_per_round": statistics.median(r["txs"] for r in rows),
        "blocks_per_round": statistics.median(r["blocks"] for r in rows),
        # block intervals from one round's first task to the next round's: sequential waits
        "block_span": statistics.median(spans) if spans else None,
        "example": rows[len(rows) // 2] if rows else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", type=Path, required=True, help="network.sh's fedchain/ dir")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--no-evaluate", action="store_true", help="rounds without federated evaluation"
    )
    parser.add_argument("--only", choices=("embedded", "fabric"), help="run one ledger only")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="Fabric write/delivery timings from every process (benchmarks/trace)",
    )
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            for kind in [args.only] if args.only else ("embedded", "fabric"):
                workdir = Path(tmp) / f"{kind}{pair}"
                res = run_demo(
                    kind, args.rounds, args.network, workdir, args.trace, not args.no_evaluate
                )
                if kind == "fabric":
                    res.update(block_profile(args.network, res["run"]))
                runs.append(res)
                print(json.dumps(res), flush=True)
    summary: dict[str, Any] = {}
    for key in ("round_s", "wall_per_round_s") if not args.only else ():
        emb = statistics.median(r[key] for r in runs if r["ledger"] == "embedded")
        fab = statistics.median(r[key] for r in runs if r["ledger"] == "fabric")
        summary[key] = {"embedded": emb, "fabric": fab, "overhead_s": round(fab - emb, 3),
                        "ratio": round(fab / emb, 2)}  # fmt: skip
    summary["load1"] = [r["load1"] for r in runs]
    print(json.dumps({"summary": summary}), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
