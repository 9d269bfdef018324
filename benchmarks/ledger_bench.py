"""Ledger benchmark (run by hand, not in CI): the embedded ledger, or a Fabric channel.

    python benchmarks/ledger_bench.py [--appends 6000] [--json]
    python benchmarks/ledger_bench.py fabric --pki PKI --endpoint HOST:PORT --tls-ca CA.pem
    python benchmarks/ledger_bench.py fabric --stand-in

The ``fabric`` mode is ``benchmarks/fabric_bench.py`` (its docstring says what it measures:
publish latency, records per second, round-phase latency with concurrent organizations).

Measures, on a fresh consortium and ledger in a temporary folder:

* signed single-record appends per second from 1 process (durability ``normal`` and ``full``);
* signed single-record appends per second from 4 OS processes on one file (the aggregator org
  writing runs from two identities, org2 and org3 answering tasks), with a 5th process watching
  and timing each entry's delivery (write timestamp -> ``wait`` returning it);
* reads: entries per second through ``metadata_get`` on a fresh handle (signatures verified
  once per handle), again on the same handle, and through the hash-and-decode checks alone;
* ``fedchain audit`` verification, entries per second, inline and with 2 worker processes.

Every append is its own transaction (``metadata_publish`` of one record): batching is not what
is measured. Targets on the 2-core reference machine: >= 2,000 appends/s from one process and
>= 10,000 audited entries/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fedchain.ledger import parse_record
from fedchain.ledger.audit import audit
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.ledger.embedded_read import decode_checked
from fedchain.pki import AGGREGATOR_NAME, identity_dir, init_consortium, load_identity

H = "ab" * 32


def run_record(name: str) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "run",
        "org": "org1",
        "run": name,
        "app_sha256": H,
        "strategy_sha256": H,
        "model_sha256": H,
        "config": {"rounds": 3, "lr": 0.05},
    }


def task(name: str) -> dict[str, Any]:
    recipients = [{"org": o, "payload_sha256": H, "payload_size": 1024} for o in ("org2", "org3")]
    return {
        "v": 1,
        "kind": "task",
        "org": "org1",
        "run": "r1",
        "round": 1,
        "task": name,
        "type": "train",
        "model_sha256": H,
        "deadline": 0,
        "recipients": recipients,
    }


def update(org: str, name: str) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "update",
        "org": org,
        "run": "r1",
        "round": 1,
        "task": name,
        "status": "ok",
        "update_sha256": "ef" * 32,
        "update_size": 2048,
        "num_examples": 120,
        "metrics": {"train_loss": 0.6931471805599453, "acc": 0.875},
        "error": None,
    }


def records_for(org: str, name: str, count: int) -> list[Any]:
    """What one writer appends: runs for org1 identities, task answers for the others."""
    if org == "org1":
        return [parse_record(run_record(f"{name}-{i}")) for i in range(count)]
    return [parse_record(update(org, f"t{i}")) for i in range(count)]


def appends(pki: Path, ledger: Path, org: str, name: str, count: int, durability: str) -> float:
    """Append ``count`` records one per transaction; return the elapsed seconds."""
    ident = load_identity(identity_dir(pki, org, name))
    records = records_for(org, name, count)
    with EmbeddedLedger.open(ledger, ident, durability=durability) as led:  # type: ignore[arg-type]
        started = time.perf_counter()
        for record in records:
            led.metadata_publish(record)
        return time.perf_counter() - started


def child_main(argv: list[str]) -> None:
    """``writer PKI LEDGER ORG NAME COUNT`` waits for "go" on stdin; ``watch LEDGER LAST``."""
    if argv[0] == "writer":
        pki, ledger, org, name, count = Path(argv[1]), Path(argv[2]), argv[3], argv[4], argv[5]
        records = records_for(org, name, int(count))
        with EmbeddedLedger.open(ledger, load_identity(identity_dir(pki, org, name))) as led:
            print("ready", flush=True)
            sys.stdin.readline()
            for record in records:
                led.metadata_publish(record)
        print("done", flush=True)
        return
    ledger, last, delays = Path(argv[1]), int(argv[2]), []
    with EmbeddedLedger.open(ledger) as led:
        after = led.head()
        print("ready", flush=True)
        while after < last:
            for entry in led.wait(after, 10.0):
                delays.append(time.time() * 1000 - entry.ts)
                after = entry.seq
    print(json.dumps(delays), flush=True)


def spawn(*args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def four_processes(pki: Path, ledger: Path, per_writer: int) -> dict[str, float]:
    """4 writer processes released together, plus a watcher; appends/s and delivery delays."""
    agg = load_identity(identity_dir(pki, "org1", AGGREGATOR_NAME))
    with EmbeddedLedger.open(ledger, agg) as led:
        led.metadata_publish(parse_record(run_record("r1")))
        for start in range(0, per_writer, 500):
            led.metadata_publish(
                [parse_record(task(f"t{i}")) for i in range(start, min(start + 500, per_writer))]
            )
        first = led.head()
    watcher = spawn("watch", ledger, first + 4 * per_writer)
    writers = [
        spawn("writer", pki, ledger, org, name, per_writer)
        for org, name in (
            ("org1", AGGREGATOR_NAME),
            ("org1", "admin"),
            ("org2", "client1"),
            ("org3", "client1"),
        )
    ]
    for proc in [watcher, *writers]:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise SystemExit("a benchmark process failed to start")
    started = time.perf_counter()
    for proc in writers:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in writers:
        out, _ = proc.communicate()
        if proc.returncode != 0 or out.strip() != "done":
            watcher.kill()
            raise SystemExit(f"a writer process failed (exit code {proc.returncode})")
    elapsed = time.perf_counter() - started
    delays = sorted(json.loads(watcher.communicate()[0]))
    return {
        "appends_per_s": 4 * per_writer / elapsed,
        "delivery_p50_ms": statistics.median(delays),
        "delivery_p95_ms": delays[int(len(delays) * 0.95)],
        "delivery_max_ms": delays[-1],
    }


def _cpu() -> float:
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def audit_rate(ledger: Path, workers: int) -> tuple[int, float, float]:
    """Entries, entries/s (wall clock) and CPU µs per entry summed over all processes."""
    cpu, started = _cpu(), time.perf_counter()
    report = audit(ledger, workers=workers)
    wall = time.perf_counter() - started
    return report.entries, report.entries / wall, (_cpu() - cpu) / report.entries * 1e6


def read_rate(ledger: Path) -> dict[str, float]:
    """Entries/s read by ``metadata_get`` on a fresh read-only handle (each entry's signature
    verified, once per handle), again on the same handle (verified already), and through the
    hash-and-decode checks alone (all a read did before readers verified signatures)."""
    with EmbeddedLedger.open(ledger) as handle:
        started = time.perf_counter()
        count = len(handle.metadata_get())
        first = time.perf_counter() - started
        started = time.perf_counter()
        handle.metadata_get()
        again = time.perf_counter() - started
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        rows = conn.execute("SELECT seq, hash, body FROM entries ORDER BY seq").fetchall()
        for seq, digest, body in rows:
            decode_checked(seq, digest, body)
        decode_only = time.perf_counter() - started
    finally:
        conn.close()
    return {
        "entries": count,
        "first_read_per_s": round(count / first),
        "reread_per_s": round(count / again),
        "decode_only_per_s": round(count / decode_only),
        "first_read_over_decode_only": round(first / decode_only, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=6000, help="appends per measurement")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fedchain-bench-") as tmp:
        root = Path(tmp)
        pki = root / "pki"
        cons = init_consortium(
            pki, consortium="bench", orgs=("org1", "org2", "org3"), aggregator="org1"
        )
        agg = load_identity(identity_dir(pki, "org1", AGGREGATOR_NAME))
        for durability in ("normal", "full"):
            path = root / f"one-{durability}.sqlite"
            EmbeddedLedger.create(path, cons, agg).close()
            seconds = appends(pki, path, "org1", AGGREGATOR_NAME, args.appends, durability)
            results[f"appends_per_s_1proc_{durability}"] = args.appends / seconds
        shared = root / "four.sqlite"
        EmbeddedLedger.create(shared, cons, agg).close()
        results.update(
            {f"{k}_4proc": v for k, v in four_processes(pki, shared, args.appends // 4).items()}
        )
        results["reads_four"] = read_rate(shared)
        for path in (root / "one-normal.sqlite", shared):
            entries, inline, inline_cpu = audit_rate(path, workers=1)
            _, parallel, parallel_cpu = audit_rate(path, workers=2)
            results[f"audit_{path.stem}"] = {
                "entries": entries,
                "inline_per_s": round(inline),
                "inline_cpu_us_per_entry": round(inline_cpu),
                "two_workers_per_s": round(parallel),
                "two_workers_cpu_us_per_entry": round(parallel_cpu),
            }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        print(f"{key:34s} {json.dumps(value) if isinstance(value, dict) else f'{value:,.1f}'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "fabric":
        import fabric_bench  # this script's folder is on sys.path

        sys.argv = [f"{sys.argv[0]} fabric", *sys.argv[2:]]
        fabric_bench.main()
    else:
        main()
