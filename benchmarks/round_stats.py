"""Per-round figures from the benchmark's timings and events, and the markdown report.

Definitions (all wall-clock, one machine):

* round wall time: from the strategy configuring round r to it configuring round r+1 (the last
  round ends when the strategy returns) — everything the runtime does between rounds counts;
* client compute: the slowest organization's ClientApp handler (``compute-s``; the
  organizations run in parallel, so the slowest one is on the critical path);
* overhead = wall - client compute. The server's FedAvg aggregation is shown separately
  ("aggregate") and is *included* in the overhead (it is the same code on both systems).
"""

from __future__ import annotations

import itertools
import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any

Row = dict[str, float]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def round_rows(timings: dict[str, Any]) -> list[Row]:
    """Wall time, compute, aggregation and overhead of every round of one run."""
    rounds = timings["rounds"]
    rows = []
    for i, row in enumerate(rounds):
        end = rounds[i + 1]["start"] if i + 1 < len(rounds) else timings["end"]
        replies = [r for r in row.get("replies", []) if "compute-s" in r]
        compute = max((r["compute-s"] for r in replies), default=0.0)
        wall = end - row["start"]
        rows.append(
            {
                "round": row["round"],
                "wall": wall,
                "compute": compute,
                "aggregate": row["aggregated"] - row["received"],
                "overhead": wall - compute,
                "replies": float(len(replies)),
            }
        )
    return rows


def summary(timings: dict[str, Any], skip: int) -> dict[str, float]:
    """Median and p90 of each figure over the rounds after the first ``skip`` (warm-up)."""
    rows = round_rows(timings)[skip:]
    if not rows:
        raise ValueError("no measured rounds: use more rounds than warm-up rounds")
    out = {"n": float(len(rows))}
    for key in ("wall", "compute", "aggregate", "overhead"):
        values = [r[key] for r in rows]
        out[f"{key}_median"] = statistics.median(values)
        out[f"{key}_p90"] = percentile(values, 90)
    return out


def _by_round(events: list[dict[str, Any]], name: str) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        if event["event"] == name and "round" in event:
            found.setdefault(int(event["round"]), []).append(event)
    return found


def _reply_of(row: dict[str, Any], partition: int) -> dict[str, Any]:
    """The reply of the node with ``partition-id`` = ``partition`` (its index among the orgs)."""
    for reply in row["replies"]:
        if reply.get("partition-id") == partition:
            return dict(reply)
    raise ValueError(f"round {row['round']}: no reply from partition {partition}")


def _critical_path(
    row: dict[str, Any],
    end: float,
    server: dict[str, list[dict[str, Any]]],
    org: dict[str, float],
    reply: dict[str, Any],
) -> dict[str, float]:
    """One round, along the organization whose announcement the aggregator saw last."""
    task = server["task"][0]["wall"]
    seen = max(e["wall"] for e in server["announced"])
    selected = server["selected"][0]["wall"]
    return {
        "configure, encode payload, publish tasks": task - row["start"],
        "ledger notice of the task (org)": org["task"] - task,
        "fetch + decode + verify hash (org)": reply["t-in"] - org["task"],
        "ClientApp compute (org)": reply["t-out"] - reply["t-in"],
        "encode reply + hash + announce (org)": org["announced"] - reply["t-out"],
        "ledger notice of the announcement": seen - org["announced"],
        "selection record": selected - seen,
        "uploads + decode + validate": row["received"] - selected,
        "FedAvg aggregate": row["aggregated"] - row["received"],
        "save model, close record, next configure": end - row["aggregated"],
    }


def fedchain_breakdown(result: Any, skip: int) -> dict[str, float]:
    """Median of each phase of the critical path over the measured rounds."""
    rounds = result.timings["rounds"]
    server = {
        n: _by_round(result.server_events, n) for n in ("task", "announced", "selected", "received")
    }
    client = {
        org: {n: _by_round(ev, n) for n in ("task", "announced")}
        for org, ev in result.client_events.items()
    }
    phases: dict[str, list[float]] = {}
    for i, row in enumerate(rounds[skip:], start=skip):
        rnd = int(row["round"])
        end = rounds[i + 1]["start"] if i + 1 < len(rounds) else result.timings["end"]
        mine = {n: server[n].get(rnd, []) for n in server}
        if not all(mine.values()):
            continue
        org = max(mine["announced"], key=lambda e: e["wall"])["org"]
        times = {n: client[org][n][rnd][0]["wall"] for n in ("task", "announced")}
        reply = _reply_of(row, sorted(client).index(org))  # the runtime's partition-id
        for name, value in _critical_path(row, end, mine, times, reply).items():
            phases.setdefault(name, []).append(value)
    return {name: statistics.median(values) for name, values in phases.items()}


def cpu_per_round(result: Any, skip: int) -> dict[str, float]:
    """Median CPU seconds (all threads) each fedchain process spends per measured round,
    from one ``task`` event of a process to its next (so the whole round counts)."""
    streams = {"aggregator": result.server_events, **result.client_events}
    out: dict[str, float] = {}
    for who, events in streams.items():
        tasks = [e for e in events if e["event"] == "task" and "cpu" in e]
        marks = [e["cpu"] for e in tasks if int(e["round"]) > skip]
        deltas = [b - a for a, b in itertools.pairwise(marks)]
        if deltas:
            out[who] = statistics.median(deltas)
    return out


def flower_breakdown(result: Any, skip: int) -> dict[str, float]:
    """Median phases of a Flower round, from the ServerApp's and the ClientApps' clocks."""
    rounds = result.timings["rounds"]
    phases: dict[str, list[float]] = {}
    for i, row in enumerate(rounds):
        if i < skip:
            continue
        end = rounds[i + 1]["start"] if i + 1 < len(rounds) else result.timings["end"]
        replies = [r for r in row["replies"] if "t-in" in r]
        first_in = min(r["t-in"] for r in replies)
        last_out = max(r["t-out"] for r in replies)
        for name, value in {
            "push, node poll, ClientApp process start (first node)": first_in - row["start"],
            "ClientApps running (first start to last finish)": last_out - first_in,
            "reply push + server poll": row["received"] - last_out,
            "FedAvg aggregate": row["aggregated"] - row["received"],
            "between rounds": end - row["aggregated"],
        }.items():
            phases.setdefault(name, []).append(value)
    return {name: statistics.median(values) for name, values in phases.items()}


def _ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s"


def _row(system: str, params: int, s: dict[str, float], target: Callable[[int, float], str]) -> str:
    floor = s.get("floor")
    beyond = f"{_ms(s['overhead_median'] - floor)}" if floor is not None else ""
    return (
        f"| {params:,} | {system} | {int(s['n'])} | {_ms(s['wall_median'])} "
        f"({_ms(s['wall_p90'])}) | {_ms(s['compute_median'])} | {_ms(s['aggregate_median'])} | "
        f"**{_ms(s['overhead_median'])}** ({_ms(s['overhead_p90'])}) | "
        f"{_ms(floor) if floor is not None else ''} | {beyond} | "
        f"{target(params, s['overhead_median']) if system == 'fedchain' else ''} | "
        f"{s.get('load', 0.0):.1f} |"
    )


def markdown_report(
    summaries: dict[tuple[str, int], dict[str, float]],
    dataplane: dict[str, float] | None,
    orgs: int,
    target: Callable[[int, float], str],
) -> str:
    """The results table, fedchain vs Flower ratios, and the data-plane figures."""
    lines = [
        f"Per round, {orgs} organizations, loopback: median (p90) over the measured "
        "rounds (round 1 = warm-up, excluded). overhead = round wall - slowest ClientApp "
        "compute. floor = the data plane alone moving the same bytes (model down to every "
        "org, one update up from each), concurrently.",
        "",
        "| params | system | rounds | round wall | client compute | aggregate | "
        "**overhead** | floor | overhead - floor | target | load avg |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for (system, params), s in sorted(summaries.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lines.append(_row(system, params, s, target))
    sizes = sorted({p for _, p in summaries})
    pairs = [
        (p, summaries[("fedchain", p)], summaries[("flower", p)])
        for p in sizes
        if ("fedchain", p) in summaries and ("flower", p) in summaries
    ]
    if pairs:
        lines += [
            "",
            "| params | fedchain overhead | Flower overhead | Flower / fedchain "
            "(overhead) | Flower / fedchain (round wall) |",
            "|---:|---:|---:|---:|---:|",
        ]
        for p, f, w in pairs:
            lines.append(
                f"| {p:,} | {_ms(f['overhead_median'])} | {_ms(w['overhead_median'])} | "
                f"{w['overhead_median'] / f['overhead_median']:.1f}x | "
                f"{w['wall_median'] / f['wall_median']:.1f}x |"
            )
    if dataplane:
        lines += [
            "",
            "| data plane (mTLS, loopback) | payload | median | min | target |",
            "|---|---:|---:|---:|---|",
        ]
        for kind in ("fetch", "upload"):
            if f"{kind}_median" in dataplane:
                ok = "met" if dataplane[f"{kind}_median"] >= 200 else "**missed**"
                lines.append(
                    f"| {kind} | {dataplane['size_mb']:g} MB | "
                    f"{dataplane[f'{kind}_median']:.0f} MB/s | "
                    f"{dataplane[f'{kind}_min']:.0f} MB/s | >= 200 MB/s: {ok} |"
                )
    return "\n".join(lines)


def cpu_table(title: str, cpu: dict[str, float], wall: float) -> str:
    """CPU per round of each process, their sum, and that sum over the machine's cores."""
    cores = os.cpu_count() or 1
    total = sum(cpu.values())
    lines = [
        f"{title}: CPU time per round (median), against the round wall time {_ms(wall)}",
        "",
        "| process | CPU per round |",
        "|---|---:|",
        *(f"| {who} | {value * 1000:,.0f} ms |" for who, value in cpu.items()),
        f"| **all processes** | **{total * 1000:,.0f} ms** |",
        f"| all / {cores} cores (lower bound on the wall time) | {total / cores * 1000:,.0f} ms |",
    ]
    return "\n".join(lines)


def breakdown_table(title: str, phases: dict[str, float]) -> str:
    """A two-column markdown table of phase medians."""
    total = sum(phases.values())
    lines = [
        f"{title} (median per phase; the sum approximates the round wall time)",
        "",
        "| phase | time | share |",
        "|---|---:|---:|",
    ]
    for name, value in phases.items():
        share = value / total * 100 if total else 0.0
        lines.append(f"| {name} | {value * 1000:,.1f} ms | {share:.0f}% |")
    lines.append(f"| **sum** | **{total * 1000:,.1f} ms** | |")
    return "\n".join(lines)
