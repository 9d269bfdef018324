"""Several real processes on one embedded ledger file: concurrent writers, a watcher, crashes.

The child processes run this module (``python -m tests.integration.test_embedded_multiprocess
ROLE ...``) so the test and its workers share one file. Children report on stdout; the parent
synchronises on those lines and on the ledger itself, never on sleeps.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.conformance.ledger_suite import run_record

from fedchain.ledger import Query, parse_record
from fedchain.ledger.audit import audit
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.pki import AGGREGATOR_NAME, Consortium, identity_dir, load_identity

ROOT = Path(__file__).parents[2]
TASKS = 150  # per updating org; the run writers write as many runs each


def child(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_embedded_multiprocess", *map(str, args)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def task_to(task: str, orgs: tuple[str, ...]) -> dict[str, Any]:
    recipients = [{"org": o, "payload_sha256": "cd" * 32, "payload_size": 1} for o in orgs]
    return {
        "v": 1,
        "kind": "task",
        "org": "org1",
        "run": "r1",
        "round": 1,
        "task": task,
        "type": "train",
        "model_sha256": None,
        "deadline": 0,
        "recipients": recipients,
    }


def update_for(org: str, task: str) -> dict[str, Any]:
    return {"v": 1, "kind": "update", "org": org, "run": "r1", "round": 1, "task": task,
            "status": "ok", "update_sha256": "ef" * 32, "update_size": 1, "num_examples": 1,
            "metrics": {}, "error": None}  # fmt: skip


# -- child roles --------------------------------------------------------------------------------


def role_runs(pki: str, ledger: str, org: str, name: str, prefix: str, count: str) -> None:
    """Append ``count`` run records, one transaction each."""
    with EmbeddedLedger.open(ledger, load_identity(identity_dir(Path(pki), org, name))) as led:
        for i in range(int(count)):
            led.metadata_publish(parse_record(run_record(f"{prefix}-{i}")))
    print("done", flush=True)


def role_updates(pki: str, ledger: str, org: str, count: str) -> None:
    """Answer tasks t0..t<count-1> (written beforehand) as ``org``, one transaction each."""
    with EmbeddedLedger.open(ledger, load_identity(identity_dir(Path(pki), org, "client1"))) as led:
        for i in range(int(count)):
            led.metadata_publish(parse_record(update_for(org, f"t{i}")))
    print("done", flush=True)


def role_watch(ledger: str, last: str) -> None:
    """Follow the ledger until entry ``last``; print each delivery's delay after its write."""
    delays = []
    with EmbeddedLedger.open(ledger) as led:
        after = led.head()
        print("ready", flush=True)
        while after < int(last):
            for entry in led.wait(after, 5.0):
                delays.append(time.time() * 1000 - entry.ts)
                after = entry.seq
    print(json.dumps({"count": len(delays), "delays": delays}), flush=True)


def role_crash(pki: str, ledger: str) -> None:
    """Write single records and 20-record batches until killed."""
    ident = load_identity(identity_dir(Path(pki), "org1", AGGREGATOR_NAME))
    with EmbeddedLedger.open(ledger, ident) as led:
        print("ready", flush=True)
        for i in range(10**9):
            size = 1 if i % 2 else 20
            name = f"c{os.getpid()}-{i}"
            led.metadata_publish([parse_record(run_record(f"{name}-{j}")) for j in range(size)])


# -- tests --------------------------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path, consortium_dir: Path, consortium: Consortium) -> Path:
    path = tmp_path / "ledger.sqlite"
    agg = load_identity(identity_dir(consortium_dir, "org1", AGGREGATOR_NAME))
    with EmbeddedLedger.create(path, consortium, agg) as led:
        led.metadata_publish(parse_record(run_record("r1")))
        led.metadata_publish([parse_record(task_to(f"t{i}", ("org2", "org3")))
                              for i in range(TASKS)])  # fmt: skip
    return path


def test_four_writers_and_a_watcher(ledger: Path, consortium_dir: Path) -> None:
    start_head = 1 + TASKS
    last = start_head + 4 * TASKS
    watcher = child("watch", ledger, last)
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == "ready"
    writers = [
        child("runs", consortium_dir, ledger, "org1", AGGREGATOR_NAME, "a", TASKS),
        child("runs", consortium_dir, ledger, "org1", "admin", "b", TASKS),
        child("updates", consortium_dir, ledger, "org2", TASKS),
        child("updates", consortium_dir, ledger, "org3", TASKS),
    ]
    for proc in writers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    delays = json.loads(out)["delays"]
    assert len(delays) == 4 * TASKS  # every entry delivered exactly once
    assert statistics.median(delays) < 50, sorted(delays)[len(delays) // 2 :]
    assert max(delays) < 1000
    report = audit(ledger)
    assert report.entries == last + 1
    with EmbeddedLedger.open(ledger) as led:
        entries = led.metadata_get(Query(after=start_head))
    assert [e.seq for e in entries] == list(range(start_head + 1, last + 1))
    by_writer = Counter((e.record.org, (e.record.run or "")[:1]) for e in entries)
    assert by_writer == {("org1", "a"): TASKS, ("org1", "b"): TASKS,
                         ("org2", "r"): TASKS, ("org3", "r"): TASKS}  # fmt: skip


def test_sigkill_mid_write_never_leaves_half_an_entry(ledger: Path, consortium_dir: Path) -> None:
    rng = random.Random(7)
    with EmbeddedLedger.open(ledger) as follower:
        for _ in range(6):
            proc = child("crash", consortium_dir, ledger)
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            target = follower.head() + rng.randint(15, 90)
            while follower.head() < target:
                follower.wait(follower.head(), 10.0)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
        entries = follower.metadata_get(Query(kind="run"))
    report = audit(ledger)
    assert report.entries == entries[-1].seq + 1
    batches = Counter(e.record.run.rsplit("-", 1)[0] for e in entries if e.record.run != "r1")
    sizes = {name: n for name, n in batches.items()}
    assert len({name.split("-")[0] for name in sizes}) == 6  # six killed writers wrote
    for name, n in sizes.items():
        index = int(name.rsplit("-", 1)[1])
        assert n == (1 if index % 2 else 20), f"batch {name} is partial: {n} records"


if __name__ == "__main__":
    ROLES = {"runs": role_runs, "updates": role_updates, "watch": role_watch, "crash": role_crash}
    ROLES[sys.argv[1]](*sys.argv[2:])
