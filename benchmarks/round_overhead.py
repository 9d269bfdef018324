"""Per-round coordination overhead: fedchain vs Flower's deployment runtime, same app, same run.

Run by hand (not part of the test suite), from the repository root::

    python benchmarks/round_overhead.py --params 1e6,1e7 --orgs 5 --rounds 6

For each model size, fedchain runs first — one aggregator and ``--orgs`` organization
processes over mTLS gRPC with the embedded SQLite ledger — then Flower 1.41 — a SuperLink (TLS)
and ``--orgs`` SuperNodes, the app submitted with ``flwr run`` — both running the trivial app in
``benchmarks/flower_app`` (FedAvg over every node; each ClientApp returns the received arrays
plus a constant and times itself). Round 1 is a warm-up and excluded. The data-plane throughput
of a 100 MB payload comes from ``benchmarks/dataplane_bench.py``. Prints markdown tables: the
overhead per round (wall time minus the slowest ClientApp's compute), Flower/fedchain ratios,
fedchain's critical path phase by phase, and the data-plane rates. Every process started is
stopped (by PID) at the end, on failure too. ``--quick``: 1M parameters, 3 rounds, 20 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import round_systems
from round_floor import transfer_floor
from round_stats import (
    breakdown_table,
    cpu_per_round,
    cpu_table,
    fedchain_breakdown,
    flower_breakdown,
    markdown_report,
    summary,
)
from round_systems import FlowerDeployment, RunResult, run_fedchain, worker

HERE = Path(__file__).resolve().parent
TARGET_OVERHEAD_S = 0.150  # at 1M parameters
WARMUP = 1


def _parse_params(text: str) -> list[int]:
    return [int(float(p)) for p in text.split(",") if p.strip()]


def _target(params: int, overhead: float) -> str:
    if params != 1_000_000:
        return ""
    return "<= 150 ms: met" if overhead <= TARGET_OVERHEAD_S else "<= 150 ms: **missed**"


def dataplane(size_mb: float, repeat: int, timeout: float) -> dict[str, float]:
    """Run ``dataplane_bench.py`` in its own process and parse its rates (MB/s)."""
    cmd = [
        sys.executable,
        str(HERE / "dataplane_bench.py"),
        "--size-mb",
        f"{size_mb:g}",
        "--repeat",
        str(repeat),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    print(done.stdout.rstrip(), file=sys.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"dataplane_bench failed: {done.stderr[-2000:]}")
    found: dict[str, float] = {"size_mb": size_mb}
    for kind, median, low in re.findall(
        r"^(fetch|upload)\s+median\s+([\d.]+) MB/s\s+min\s+([\d.]+)", done.stdout, re.M
    ):
        found[f"{kind}_median"], found[f"{kind}_min"] = float(median), float(low)
    return found


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _run_systems(args: argparse.Namespace, workdir: Path) -> list[RunResult]:
    results: list[RunResult] = []
    timeout = args.timeout
    for params in args.params:
        _log(f"fedchain: {params:,} parameters, {args.orgs} orgs, {args.rounds} rounds")
        load = os.getloadavg()[0]
        results.append(run_fedchain(workdir, params, args.orgs, args.rounds, timeout))
        results[-1].load = load
        if not args.skip_floor:
            _log(f"data-plane floor: {args.orgs} orgs x {4 * params / 1e6:g} MB down and up")
            results[-1].floor = transfer_floor(4 * params + 512, args.orgs, args.rounds)
    if args.skip_flower:
        return results
    flower = FlowerDeployment(workdir, args.orgs)
    try:
        flower.start()
        for params in args.params:
            _log(f"Flower: {params:,} parameters, {args.orgs} SuperNodes, {args.rounds} rounds")
            load = os.getloadavg()[0]
            results.append(flower.run(params, args.rounds, timeout))
            results[-1].load = load
    finally:
        flower.stop()
    return results


def _report(
    args: argparse.Namespace, results: list[RunResult], rates: dict[str, float] | None
) -> str:
    summaries = {}
    for r in results:
        summaries[(r.system, r.params)] = {**summary(r.timings, WARMUP), "load": r.load}
        if r.floor:
            summaries[(r.system, r.params)]["floor"] = r.floor["median"]
    parts = [markdown_report(summaries, rates, args.orgs, _target)]
    for r in results:
        phases = (
            fedchain_breakdown(r, WARMUP) if r.system == "fedchain" else flower_breakdown(r, WARMUP)
        )
        parts.append(breakdown_table(f"{r.system}, {r.params:,} parameters", phases))
        if r.system == "fedchain":
            wall = summaries[(r.system, r.params)]["wall_median"]
            parts.append(
                cpu_table(f"fedchain, {r.params:,} parameters", cpu_per_round(r, WARMUP), wall)
            )
    return "\n\n".join(parts)


def _raw(results: list[RunResult], rates: dict[str, float] | None) -> dict[str, Any]:
    return {
        "dataplane": rates,
        "runs": [
            {
                "system": r.system,
                "params": r.params,
                "timings": r.timings,
                "load": r.load,
                "floor": r.floor,
                "server_events": r.server_events,
                "client_events": r.client_events,
            }
            for r in results
        ],
    }


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params",
        type=_parse_params,
        default=None,
        help="model sizes, comma-separated (default 1e6,1e7; --quick: 1e6)",
    )
    parser.add_argument("--orgs", type=int, default=5)
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds per run, warm-up included (default 6; --quick: 3)",
    )
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument(
        "--skip-floor",
        action="store_true",
        help="do not measure the data plane alone with the round's payloads",
    )
    parser.add_argument("--only-dataplane", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--dataplane-mb",
        type=float,
        default=None,
        help="payload size in MB (default 100; --quick: 20)",
    )
    parser.add_argument("--dataplane-repeat", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given")
    parser.add_argument("--json", type=Path, default=None, help="write raw timings here")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run fedchain's aggregator under py-spy (pip install py-spy); raw stacks go here",
    )
    parser.add_argument("--worker", choices=("server", "client"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.params = args.params or ([1_000_000] if args.quick else [1_000_000, 10_000_000])
    args.rounds = args.rounds or (3 if args.quick else 6)
    args.dataplane_mb = args.dataplane_mb or (20.0 if args.quick else 100.0)
    args.dataplane_repeat = args.dataplane_repeat or (1 if args.quick else 3)
    if args.rounds <= WARMUP:
        parser.error(f"--rounds must exceed the {WARMUP} warm-up round")
    return args


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the benchmark, print the markdown report on stdout."""
    args = _options(argv)
    if args.worker:
        return worker(args.worker, args.spec)
    # A plain SIGTERM would skip the ``finally`` blocks that stop every child process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fedchain-rounds-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        round_systems.PROFILE_DIR = args.profile.resolve()
    try:
        results = [] if args.only_dataplane else _run_systems(args, workdir)
        _log(f"data plane: {args.dataplane_mb:g} MB x {args.dataplane_repeat}")
        rates = dataplane(args.dataplane_mb, args.dataplane_repeat, args.timeout)
        if args.json:
            args.json.write_text(json.dumps(_raw(results, rates)))
        print(_report(args, results, rates))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
