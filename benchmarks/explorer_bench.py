"""Explorer benchmark (run by hand, not in CI): page times of ``fedchain explorer`` on a large
embedded ledger, over HTTP from the real server process.

    python benchmarks/explorer_bench.py [--entries 10000] [--repeat 5] [--json]

Builds a consortium and a ledger of ``--entries`` entries in a temporary folder (one run,
rounds of a task to three organizations, their three updates, a selection and a close with two
metrics: six entries a round), plus a small ledger of 100 entries for comparison, then for each:

* start: from launching ``fedchain explorer`` to its "listening" line (every entry read and
  its signature verified once, the view built);
* the run page (``/run/<id>``: every round, two charts with one point per round) at once,
  while the server's first audit runs in the background; the integrity page's first request
  (it waits for that audit); then the run, runs and integrity pages, ``--repeat`` requests
  each (median and slowest);
* live: from ``metadata_publish`` of one record in this process to the SSE event for it
  arriving at a client of the server (median of ``--repeat``).

Target (issue 15): the run page of a 10,000-entry ledger in under a second.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fedchain.ledger import parse_record
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.pki import (
    AGGREGATOR_NAME,
    identity_dir,
    init_consortium,
    load_consortium,
    load_identity,
)

ORGS = ("org1", "org2", "org3")
RUN = "bench"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _rec(kind: str, org: str, **fields: Any) -> Any:
    return parse_record({"v": 1, "kind": kind, "org": org, "run": RUN, **fields})


def build(folder: Path, entries: int) -> Path:
    """A ledger of about ``entries`` entries (whole rounds) in ``folder``."""
    pki, path = folder / "pki", folder / "ledger.sqlite"
    if not pki.exists():
        init_consortium(pki, consortium="bench", orgs=ORGS, aggregator="org1")
    names = {"org1": AGGREGATOR_NAME, "org2": "client1", "org3": "client1"}
    ids = {o: load_identity(identity_dir(pki, o, n)) for o, n in names.items()}
    rounds = max(-(-(entries - 2) // 6), 1)  # whole rounds, at least ``entries``
    consortium = load_consortium(pki)
    agg = EmbeddedLedger.create(path, consortium, ids["org1"])
    others = {o: EmbeddedLedger.open(path, ids[o]) for o in ORGS[1:]}
    writers = {"org1": agg, **others}
    agg.metadata_publish(_rec("run", "org1", app_sha256=_sha("a"), strategy_sha256=_sha("s"),
                              model_sha256=_sha("m0"), config={"rounds": rounds}))  # fmt: skip
    for rnd in range(1, rounds + 1):
        append_round(writers, rnd)
    for handle in writers.values():
        handle.close()
    return path


def append_round(writers: dict[str, EmbeddedLedger], rnd: int) -> None:
    task = f"t{rnd}"
    recipients = [{"org": o, "payload_sha256": _sha(f"m{rnd - 1}"), "payload_size": 1}
                  for o in ORGS]  # fmt: skip
    writers["org1"].metadata_publish(_rec(
        "task", "org1", round=rnd, task=task, type="train", model_sha256=_sha(f"m{rnd - 1}"),
        deadline=0, recipients=recipients))  # fmt: skip
    for org in ORGS:
        writers[org].metadata_publish(_rec(
            "update", org, round=rnd, task=task, status="ok", update_sha256=_sha(org + task),
            update_size=1, num_examples=100, metrics={"loss": 1 / rnd}, error=None))  # fmt: skip
    writers["org1"].metadata_publish([
        _rec("selection", "org1", round=rnd, task=task, selected=list(ORGS)),
        _rec("close", "org1", round=rnd, model_sha256=_sha(f"m{rnd}"),
             aggregated=[{"org": o, "update_sha256": _sha(o + task)} for o in ORGS],
             dropouts=[], rejected=[], metrics={"accuracy": 1 - 1 / (rnd + 1), "loss": 1 / rnd}),
    ])  # fmt: skip


def _get(port: int, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    body = conn.getresponse().read()
    conn.close()
    return time.perf_counter() - started, len(body)


def _pages(port: int, repeat: int) -> dict[str, Any]:
    """The run page at once (while the server's first audit runs in the background), then the
    integrity page (which waits for that audit), then every page ``repeat`` times, idle."""
    out: dict[str, Any] = {"run_during_audit_s": _get(port, f"/run/{RUN}")[0]}
    out["integrity_first_s"] = _get(port, "/integrity")[0]
    for name, path in (("run", f"/run/{RUN}"), ("runs", "/"), ("integrity", "/integrity")):
        times = [_get(port, path) for _ in range(repeat)]
        out[name] = {"median_s": statistics.median(t for t, _ in times),
                     "max_s": max(t for t, _ in times), "bytes": times[0][1]}  # fmt: skip
    return out


def _live(port: int, path: Path, pki: Path, repeat: int, head: int) -> list[float]:
    """Publish one round at a time; time until its close's SSE event reaches a client."""
    names = {"org1": AGGREGATOR_NAME, "org2": "client1", "org3": "client1"}
    writers = {o: EmbeddedLedger.open(path, load_identity(identity_dir(pki, o, n)))
               for o, n in names.items()}  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", f"/events?after={head}")
    stream = conn.getresponse()
    latencies = []
    rnd = writers["org1"].metadata_get()[-1].record.round or 0
    for _ in range(repeat):
        rnd += 1
        started = time.perf_counter()
        writers["org1"].metadata_publish(_rec(
            "task", "org1", round=rnd, task=f"t{rnd}", type="train", model_sha256=None,
            deadline=0, recipients=[{"org": "org2", "payload_sha256": _sha("x"),
                                     "payload_size": 1}]))  # fmt: skip
        while not stream.readline().startswith(b"event: entry"):
            pass
        latencies.append(time.perf_counter() - started)
    conn.close()
    for handle in writers.values():
        handle.close()
    return latencies


def measure(path: Path, repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedchain.cli.main", "explorer", "--ledger", str(path),
         "--address", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        start_s = time.perf_counter() - started
        port = int(line.split()[1].rstrip("/").rpartition(":")[2])
        result = {"start_s": start_s, **_pages(port, repeat)}
        head = int(sqlite_head(path))
        result["live_s"] = statistics.median(_live(port, path, path.parent / "pki", repeat, head))
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def sqlite_head(path: Path) -> int:
    with EmbeddedLedger.open(path) as handle:
        return handle.head()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, n in (("small", 100), ("large", args.entries)):
            folder = Path(tmp) / label
            folder.mkdir()
            path = build(folder, n)
            results[label] = {"entries": sqlite_head(path) + 1, **measure(path, args.repeat)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    small, large = results["small"], results["large"]
    print(f"| measurement | {small['entries']} entries | {large['entries']} entries | ratio |")
    print("|---|---:|---:|---:|")
    rows = [("start (read, verify, build view)", "start_s"),
            ("run page, during the first audit", "run_during_audit_s"),
            ("integrity page, first (the audit)", "integrity_first_s")]  # fmt: skip
    for page in ("run", "runs", "integrity"):
        rows += [(f"{page} page, median", f"{page}.median_s"),
                 (f"{page} page, slowest", f"{page}.max_s")]  # fmt: skip
    rows.append(("live: publish to SSE event, median", "live_s"))
    for name, key in rows:
        a, b = (_dig(r, key) for r in (small, large))
        print(f"| {name} | {a * 1000:.1f} ms | {b * 1000:.1f} ms | {b / a:.1f} |")
    print(f"| run page size | {small['run']['bytes']:,} B | {large['run']['bytes']:,} B | |")


def _dig(data: dict[str, Any], key: str) -> float:
    value: Any = data
    for part in key.split("."):
        value = value[part]
    return float(value)


if __name__ == "__main__":
    main()
