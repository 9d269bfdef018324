"""Issue 12, point 6: a ledger that went backwards or forked is refused.

A real run (``fedchain-server`` and three ``fedchain-client`` processes over mTLS, a real
embedded ledger file) leaves each identity's signed checkpoint beside the ledger. Then the file
is rolled back as whoever holds it could: its last entries cut cleanly (the append-only
triggers dropped and put back), or the aggregator's last ``close`` cut and signed again with an
organization quietly dropped. A plain ``fedchain audit`` passes both (every entry left still
verifies); the restarted runtimes and ``fedchain audit --expect-head`` / ``--checkpoint``
refuse them with one line and exit 1.
"""

from __future__ import annotations

import copy as copy_module
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration.runtime_support import ROOT, Deployment, child_env, free_port
from tests.integration.test_audit import connection

from fedchain.ledger import Query, parse_record
from fedchain.ledger import sqlite_store as store
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.pki import AGGREGATOR_NAME, identity_dir, load_identity

pytestmark = pytest.mark.slow


@dataclass
class Finished:
    workdir: Path
    head: str  # SEQ:HASH of the last entry after the run
    close_seq: int  # the last close record


@pytest.fixture(scope="module")
def finished(consortium_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    dep = Deployment(pki=consortium_dir, workdir=tmp_path_factory.mktemp("run"))
    try:
        agg, clients, _ = dep.start({"org1": None, "org2": None, "org3": None}, rounds=2)
        agg.expect_exit(0)
        for proc in clients.values():
            proc.expect_exit(0)
    finally:
        dep.stop_all()
    with EmbeddedLedger.open(dep.ledger) as led:
        last = led.metadata_get(Query(after=led.head() - 1))[-1]
        close = led.metadata_get(Query(kind="close"))[-1]
    return Finished(dep.workdir, f"{last.seq}:{last.hash}", close.seq)


@pytest.fixture
def copy(finished: Finished, tmp_path: Path, consortium_dir: Path) -> Deployment:
    """A copy of the finished run's folder (ledger and checkpoints) to roll back."""
    for item in finished.workdir.iterdir():
        if item.name.startswith("ledger.sqlite"):
            shutil.copy(item, tmp_path / item.name)
    return Deployment(pki=consortium_dir, workdir=tmp_path)


def cut_from(path: Path, seq: int) -> None:
    """Remove entries ``seq`` and after cleanly: triggers dropped, then put back as they were."""
    with connection(path) as conn:
        conn.execute("DROP TRIGGER entries_no_delete")
        conn.execute("DELETE FROM entries WHERE seq >= ?", (seq,))
        conn.execute(store._TRIGGER.format(table="entries", op="delete", OP="DELETE"))


def fork_last_close(dep: Deployment, seq: int) -> None:
    """The aggregator cuts its last close and signs it again without org3."""
    with EmbeddedLedger.open(dep.ledger) as led:
        (close,) = led.metadata_get(Query(after=seq - 1, limit=1))
    cut_from(dep.ledger, seq)
    body = copy_module.deepcopy(dict(close.record.data))
    body["aggregated"] = [a for a in body["aggregated"] if a["org"] != "org3"]
    aggregator = load_identity(identity_dir(dep.pki, "org1", AGGREGATOR_NAME))
    with EmbeddedLedger.open(dep.ledger, aggregator) as led:
        (forged,) = led.metadata_publish(parse_record(body))
    assert forged.seq == seq
    assert forged.hash != close.hash


def audit(dep: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "fedchain.cli.main", "audit", "--ledger", str(dep.ledger), *args]
    return subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def checkpoint(dep: Deployment, org: str, name: str = "client1") -> Path:
    return dep.ledger.with_name(f"{dep.ledger.name}.{org}.{name}.head")


def expect_refused(dep: Deployment, words: str) -> None:
    """Restarted runtimes and the audit against a head or a checkpoint all refuse the copy."""
    address = f"127.0.0.1:{free_port()}"
    client = dep.client("org2", address)
    client.expect_exit(1)
    (line,) = [ln for ln in client.err if ln.startswith("error:")]
    assert words in line
    server = dep.server(rounds=2, address=address)
    server.expect_exit(1)
    assert any(words in ln for ln in server.err if ln.startswith("error:"))
    for args in (
        ("--checkpoint", str(checkpoint(dep, "org2"))),
        ("--checkpoint", str(checkpoint(dep, "org1", AGGREGATOR_NAME))),
    ):
        result = audit(dep, *args)
        assert result.returncode == 1, result.stdout + result.stderr
        assert words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_ledger_cut_cleanly_is_refused(finished: Finished, copy: Deployment) -> None:
    assert checkpoint(copy, "org2").is_file()
    cut_from(copy.ledger, finished.close_seq)
    assert audit(copy).returncode == 0  # the cut alone goes unnoticed...
    result = audit(copy, "--expect-head", finished.head)  # ...but not against a head seen
    assert result.returncode == 1
    assert "went backwards" in result.stderr
    expect_refused(copy, "went backwards")


def test_a_close_signed_again_without_an_org_is_refused(
    finished: Finished, copy: Deployment
) -> None:
    fork_last_close(copy, finished.close_seq)
    assert audit(copy).returncode == 0  # a valid chain, every signature good
    result = audit(copy, "--expect-head", finished.head)
    assert result.returncode == 1
    assert "forked" in result.stderr or "went backwards" in result.stderr
    expect_refused(copy, "forked")


def test_the_intact_ledger_extends_every_checkpoint(finished: Finished, copy: Deployment) -> None:
    result = audit(
        copy, "--expect-head", finished.head,
        *(a for org in ("org2", "org3") for a in ("--checkpoint", str(checkpoint(copy, org)))),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"head {finished.head}" in result.stdout.replace("\n", "")
