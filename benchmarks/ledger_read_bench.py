"""Cold reads of the embedded ledger, side by side across code versions (run by hand).

    python benchmarks/ledger_read_bench.py [--entries 2500] [--repeat 5] [--before SRC ...]

Builds one ledger in a temporary folder (consortium, run, tasks and updates of three
organizations), then, alternating between versions, starts a fresh process per measurement
that opens the file read-only and reads every entry once with ``metadata_get`` (what a process
joining a federation does). Reported per version: the median entries per second (wall clock)
and CPU microseconds per entry, and each ratio to the first version. ``--before SRC`` puts
another checkout's ``src`` folder first on ``PYTHONPATH`` (e.g. ``git archive`` of an older
commit); this checkout is measured as "this". A fresh process per read means nothing is cached.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import json, sys, time
from fedchain.ledger.embedded import EmbeddedLedger
with EmbeddedLedger.open(sys.argv[1]) as led:
    wall, cpu = time.perf_counter(), time.process_time()
    n = len(led.metadata_get())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"entries": n, "wall": wall, "cpu": cpu}))
"""


def build(folder: Path, entries: int) -> Path:
    """A ledger of about ``entries`` entries written by three organizations."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ledger_bench import records_for, run_record, task  # the same records

    from fedchain.ledger import parse_record
    from fedchain.ledger.embedded import EmbeddedLedger
    from fedchain.pki import AGGREGATOR_NAME, identity_dir, init_consortium, load_identity

    pki = folder / "pki"
    init_consortium(pki, consortium="bench", orgs=["org1", "org2", "org3"], aggregator="org1")
    consortium_ids = {o: load_identity(identity_dir(pki, o, "client1")) for o in ("org2", "org3")}
    agg = load_identity(identity_dir(pki, "org1", AGGREGATOR_NAME))
    from fedchain.pki import load_consortium

    path = folder / "ledger.sqlite"
    per = max(entries // 3, 1)
    with EmbeddedLedger.create(path, load_consortium(pki), agg) as led:
        led.metadata_publish(parse_record(run_record("r1")))
        led.metadata_publish([parse_record(task(f"t{i}")) for i in range(per)])
    for org, ident in consortium_ids.items():
        with EmbeddedLedger.open(path, ident) as led:
            for start in range(0, per, 500):
                led.metadata_publish(records_for(org, "client1", per)[start : start + 500])
    return path


def measure(src: str | None, ledger: Path) -> dict[str, float]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(ledger)], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return dict(json.loads(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=2500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", action="append", default=[], help="an older src folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    versions = {f"before{i + 1}" if len(args.before) > 1 else "before": s
                for i, s in enumerate(args.before)}  # fmt: skip
    versions["this"] = None
    with tempfile.TemporaryDirectory() as tmp:
        ledger = build(Path(tmp), args.entries)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in versions}
        started = time.time()
        for _ in range(args.repeat):
            for name, src in versions.items():
                runs[name].append(measure(src, ledger))
    table = {}
    for name, found in runs.items():
        n = found[0]["entries"]
        table[name] = {
            "entries": n,
            "per_s": round(statistics.median(n / r["wall"] for r in found)),
            "cpu_us_per_entry": round(statistics.median(r["cpu"] / n * 1e6 for r in found), 1),
        }
    first = next(iter(table.values()))
    for row in table.values():
        row["per_s_ratio"] = round(row["per_s"] / first["per_s"], 2)
        row["cpu_ratio"] = round(row["cpu_us_per_entry"] / first["cpu_us_per_entry"], 2)
    result = {"seconds": round(time.time() - started), "load": os.getloadavg()[0], **table}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{first['entries']} entries, {args.repeat} alternated cold reads per version")
    for name, row in table.items():
        print(f"{name:8s} {row['per_s']:>8} entries/s ({row['per_s_ratio']}x)  "
              f"{row['cpu_us_per_entry']:>6} CPU us/entry ({row['cpu_ratio']}x)")  # fmt: skip


if __name__ == "__main__":
    main()
