"""``fedchain audit`` and ``fedchain ledger`` as a user runs them, on real ledger files.

A two-round run is recorded through the API; each test tampers with a copy the way an attacker
with write access to the file could (SQL edits with the append-only triggers dropped, a raw
byte flip in the database file, entries forged with real or foreign keys) and checks that the
audit fails naming the right entry, through the API and the CLI as a subprocess; independent
CLI runs are started together to keep the suite fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from fedchain.errors import LedgerCorrupted
from fedchain.ledger import audit_check, parse_record
from fedchain.ledger.audit import audit
from fedchain.ledger.chain import encode_body
from fedchain.ledger.embedded import EmbeddedLedger, store_entry
from fedchain.pki import (
    AGGREGATOR_NAME,
    Consortium,
    Identity,
    identity_dir,
    init_consortium,
    load_identity,
)

CLI = [sys.executable, "-m", "fedchain.cli.main"]
H = {name: hashlib.sha256(name.encode()).hexdigest() for name in ("app", "strategy")}


def start(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return finish(start(*args, env=env))


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- a recorded run -----------------------------------------------------------------------------


def identities(pki: Path) -> dict[str, Identity]:
    names = {"org1": AGGREGATOR_NAME, "org2": "client1", "org3": "client1"}
    return {o: load_identity(identity_dir(pki, o, n)) for o, n in names.items()}


def _task(task: str, rnd: int, model: str) -> dict[str, Any]:
    recipients = [{"org": o, "payload_sha256": model, "payload_size": 3} for o in ("org2", "org3")]
    return {
        "v": 1,
        "kind": "task",
        "org": "org1",
        "run": "r1",
        "round": rnd,
        "task": task,
        "type": "train",
        "model_sha256": model,
        "deadline": 0,
        "recipients": recipients,
    }


def _update(org: str, task: str, rnd: int, n: int) -> dict[str, Any]:
    return {"v": 1, "kind": "update", "org": org, "run": "r1", "round": rnd, "task": task,
            "status": "ok", "update_sha256": hashlib.sha256(f"{org}{task}".encode()).hexdigest(),
            "update_size": 3, "num_examples": n, "metrics": {f"loss_{org}_{task}": 0.5},
            "error": None}  # fmt: skip


def _close(rnd: int, model: str, orgs: list[str], dropped: list[str]) -> dict[str, Any]:
    aggregated = [{"org": o, "update_sha256": hashlib.sha256(f"{o}t{rnd}".encode()).hexdigest()}
                  for o in orgs]  # fmt: skip
    return {"v": 1, "kind": "close", "org": "org1", "run": "r1", "round": rnd,
            "model_sha256": model, "aggregated": aggregated,
            "dropouts": [{"org": o, "stage": "train"} for o in dropped], "rejected": [],
            "metrics": {"accuracy": 0.5 + rnd / 10}}  # fmt: skip


def record_run(path: Path, consortium: Consortium, ids: dict[str, Identity], models: Path) -> None:
    """Entries 0-9: consortium, run, round 1 (task, 2 updates, selection, close), round 2
    (task, 1 update, close with org3 dropped). Global models are saved as <sha256>.bin."""
    sha = {}
    models.mkdir()
    for i in range(3):
        data = f"model {i}".encode()
        sha[i] = hashlib.sha256(data).hexdigest()
        (models / f"{sha[i]}.bin").write_bytes(data)
    run = {
        "v": 1,
        "kind": "run",
        "org": "org1",
        "run": "r1",
        "app_sha256": H["app"],
        "strategy_sha256": H["strategy"],
        "model_sha256": sha[0],
        "config": {"rounds": 2},
    }
    agg = EmbeddedLedger.create(path, consortium, ids["org1"])
    org2, org3 = (EmbeddedLedger.open(path, ids[o]) for o in ("org2", "org3"))
    agg.metadata_publish([parse_record(run), parse_record(_task("t1", 1, sha[0]))])
    org2.metadata_publish(parse_record(_update("org2", "t1", 1, 120)))
    org3.metadata_publish(parse_record(_update("org3", "t1", 1, 80)))
    selection = {"v": 1, "kind": "selection", "org": "org1", "run": "r1", "round": 1,
                 "task": "t1", "selected": ["org2", "org3"]}  # fmt: skip
    agg.metadata_publish([parse_record(selection),
                          parse_record(_close(1, sha[1], ["org2", "org3"], []))])  # fmt: skip
    agg.metadata_publish(parse_record(_task("t2", 2, sha[1])))
    org2.metadata_publish(parse_record(_update("org2", "t2", 2, 121)))
    agg.metadata_publish(parse_record(_close(2, sha[2], ["org2"], ["org3"])))
    for handle in (agg, org2, org3):
        handle.close()


@pytest.fixture(scope="module")
def foreign_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("foreign") / "pki"
    init_consortium(out, consortium="testnet", orgs=("org1", "org2", "org3"), aggregator="org1")
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, consortium_dir: Path,
             consortium: Consortium) -> tuple[Path, Path]:  # fmt: skip
    folder = tmp_path_factory.mktemp("recorded")
    record_run(folder / "ledger.sqlite", consortium, identities(consortium_dir), folder / "models")
    return folder / "ledger.sqlite", folder / "models"


# -- tampering ----------------------------------------------------------------------------------


@contextlib.contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection committed and closed on exit (the last close checkpoints the WAL, so the
    file alone then holds every change, as a raw copy or byte flip expects)."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def sql(path: Path, *statements: str, params: tuple[Any, ...] = ()) -> None:
    with connection(path) as conn:
        for name in ("entries_no_update", "entries_no_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in statements:
            conn.execute(statement, params if "?" in statement else ())


def flip_column(column: str, seq: int = 4, offset: int = 20) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        with connection(path) as conn:
            value = bytearray(conn.execute(f"SELECT {column} FROM entries WHERE seq = ?",
                                           (seq,)).fetchone()[0])  # fmt: skip
        value[offset % len(value)] ^= 0x01
        sql(path, f"UPDATE entries SET {column} = ? WHERE seq = {seq}", params=(bytes(value),))

    return tamper


def flip_raw_file_byte(path: Path) -> None:
    """Flip one byte of entry 4's body in the database file itself (no SQLite involved)."""
    assert not Path(f"{path}-wal").exists()  # every change is in the file itself
    data = bytearray(path.read_bytes())
    marker = b"loss_org3_t1"  # appears in entry 4's body only
    assert data.count(marker) == 1
    data[data.index(marker)] ^= 0x01  # 'l' -> 'm': still valid JSON, different bytes
    path.write_bytes(bytes(data))


def swap(path: Path) -> None:
    with connection(path) as conn:
        rows = {r[0]: r[1:] for r in conn.execute("SELECT * FROM entries WHERE seq IN (4, 5)")}
    cols = "hash = ?, body = ?, sig = ?, kind = ?, org = ?, run = ?, round = ?, task = ?"
    sql(path, f"UPDATE entries SET {cols} WHERE seq = 4", params=rows[5])
    sql(path, f"UPDATE entries SET {cols} WHERE seq = 5", params=rows[4])


def forge(
    signer: Identity, record: dict[str, Any], claim: str | None = None
) -> Callable[[Path], None]:
    """Append a consistently chained entry signed by ``signer``, bypassing the write rules."""

    def tamper(path: Path) -> None:
        with connection(path) as conn:
            seq, digest = conn.execute("SELECT seq, hash FROM entries ORDER BY seq DESC").fetchone()
            parsed = parse_record(record)
            ts = int(time.time() * 1000)
            body = encode_body(seq + 1, digest.hex(), parsed, ts, claim or signer.org,
                               signer.fingerprint)  # fmt: skip
            der = signer.cert.public_bytes(serialization.Encoding.DER)
            conn.execute("INSERT OR IGNORE INTO certs VALUES (?, ?)", (signer.fingerprint, der))
            store_entry(conn, seq + 1, body, signer.sign(body), parsed)

    return tamper


def tamperings(pki: Path, foreign: Path) -> dict[str, tuple[Callable[[Path], None], int, str]]:
    """name -> (tamper, entry the audit must name, words its reason must contain)."""
    ids, strangers = identities(pki), identities(foreign)
    update = _update("org2", "t2", 2, 5) | {"task": "t1", "round": 1}
    return {
        "body byte": (flip_column("body"), 4, "hash does not match"),
        "hash byte": (flip_column("hash"), 4, "hash does not match"),
        "signature byte": (flip_column("sig", offset=40), 4, "signature"),
        "raw file byte": (flip_raw_file_byte, 4, "hash does not match"),
        "index column": (lambda p: sql(p, "UPDATE entries SET org = 'org2' WHERE seq = 4"), 4,
                         "indexed columns"),
        "text column": (lambda p: sql(p, "UPDATE entries SET body = CAST(body AS TEXT) "
                                         "WHERE seq = 4"), 4, "not a BLOB"),
        "deleted entry": (lambda p: sql(p, "DELETE FROM entries WHERE seq = 4"), 4, "missing"),
        "reordered entries": (swap, 4, "seq 5"),
        "foreign key": (forge(strangers["org3"], _update("org3", "t2", 2, 9)), 10,
                        "signer certificate rejected"),
        "wrong role": (forge(ids["org2"], _task("t9", 3, "aa" * 32) | {"org": "org2"}), 10,
                       "role.aggregator_only"),
        "as another org": (forge(ids["org2"], update | {"org": "org3"}, claim="org3"), 10,
                           "signer claims org3"),
    }  # fmt: skip


def test_every_tampering_is_caught_naming_the_entry(
    recorded: tuple[Path, Path], consortium_dir: Path, foreign_dir: Path, tmp_path: Path
) -> None:
    ledger, _ = recorded
    cases = tamperings(consortium_dir, foreign_dir)
    procs = {}
    for i, (name, (tamper, seq, words)) in enumerate(cases.items()):
        copy = tmp_path / f"case{i}.sqlite"
        shutil.copy(ledger, copy)
        tamper(copy)
        before = copy.read_bytes()
        with pytest.raises(LedgerCorrupted) as info:
            audit(copy)
        assert (info.value.seq, name) == (seq, name)
        assert words in info.value.detail, (name, info.value.detail)
        procs[name] = (start("audit", "--ledger", copy), copy, before)
        assert copy.read_bytes() == before, f"{name}: audit modified the file"
    copy = procs["wrong role"][1]
    verdict = json.loads(finish(start("audit", "--ledger", copy, "--json")).stdout)
    assert (verdict["ok"], verdict["seq"]) == (False, 10)
    assert "write rule role.aggregator_only" in verdict["error"]
    for name, (proc, copy, before) in procs.items():
        _, seq, words = cases[name]
        line = one_line_error(finish(proc))
        assert line.startswith(f"error: entry {seq}: "), (name, line)
        assert words in line, (name, line)
        assert copy.read_bytes() == before, f"{name}: audit modified the file"


def test_clean_ledger_passes_with_a_round_table(
    recorded: tuple[Path, Path], consortium_dir: Path
) -> None:
    ledger, models = recorded
    table = start("audit", "--ledger", ledger, "--models", models, "--pki", consortium_dir)
    as_json = start("audit", "--ledger", ledger, "--models", models, "--json")
    shown = start("ledger", "show", "--ledger", ledger, "--kind", "close", "--json")
    text, report, closes = finish(table), finish(as_json), finish(shown)
    assert text.returncode == 0, text.stderr
    assert "ledger intact: 10 entries verified" in text.stdout
    assert "org2=120, org3=80" in text.stdout
    assert "3 verified, 0 missing, 0 altered" in text.stdout
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["ok"] is True
    assert data["entries"] == 10
    assert [(r["round"], r["num_examples"], r["dropouts"]) for r in data["rounds"]] == [
        (1, {"org2": 120, "org3": 80}, []), (2, {"org2": 121}, ["org3"])]  # fmt: skip
    assert [r["model_sha256"] for r in data["rounds"]] == [
        c["record"]["model_sha256"] for c in json.loads(closes.stdout)]  # fmt: skip


def test_altered_or_missing_model_files(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    ledger, models = recorded
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    first, second, _ = sorted(copy.iterdir())
    first.write_bytes(b"poisoned")
    second.unlink()
    result = run("audit", "--ledger", ledger, "--models", copy)
    line = one_line_error(result)
    assert first.name in line
    assert f"missing {second.name}" in result.stdout


def test_another_consortium_is_refused_with_pki(recorded: tuple[Path, Path],
                                                foreign_dir: Path) -> None:  # fmt: skip
    line = one_line_error(run("audit", "--ledger", recorded[0], "--pki", foreign_dir))
    assert line.startswith("error: entry 0: ")


@pytest.mark.parametrize("case", ["clean", "signature byte", "deleted entry", "wrong role"])
def test_parallel_audit_names_the_same_entry(
    recorded: tuple[Path, Path], consortium_dir: Path, foreign_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, case: str,
) -> None:  # fmt: skip
    """Worker processes (forced on for a small ledger, in chunks of 3) give the same verdict."""
    monkeypatch.setattr(audit_check, "PARALLEL_MIN", 0)
    monkeypatch.setattr(audit_check, "CHUNK", 3)
    copy = tmp_path / "ledger.sqlite"
    shutil.copy(recorded[0], copy)
    if case == "clean":
        assert audit(copy, workers=2).entries == 10
        return
    tamper, seq, words = tamperings(consortium_dir, foreign_dir)[case]
    tamper(copy)
    with pytest.raises(LedgerCorrupted) as info:
        audit(copy, workers=2)
    assert info.value.seq == seq
    assert words in str(info.value)


@pytest.fixture(scope="module")
def locked_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A consortium whose private keys are encrypted with the password "right"."""
    out = tmp_path_factory.mktemp("locked") / "pki"
    init_consortium(out, consortium="locked", orgs=("org1", "org2"), aggregator="org1",
                    password=b"right")  # fmt: skip
    return out


def test_bad_input_gives_one_line_errors_and_changes_nothing(
    recorded: tuple[Path, Path], locked_dir: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    shutil.copy(recorded[0], ledger)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x00not a database" * 200)
    new = tmp_path / "new.sqlite"
    before = {p: p.read_bytes() for p in (ledger, other, garbage)}
    cases = {
        "missing": (("audit", "--ledger", tmp_path / "nope.sqlite"), "no ledger file"),
        "folder": (("ledger", "show", "--ledger", tmp_path), "no ledger file"),
        "other sqlite": (("audit", "--ledger", other), "not a fedchain ledger"),
        "garbage": (("ledger", "show", "--ledger", garbage), "not a readable fedchain ledger"),
        "exists": (("ledger", "init", "--ledger", ledger, "--pki", locked_dir,
                    "--password-env", "FC_TEST_PW"), "already exists"),
        "wrong password": (("ledger", "init", "--ledger", new, "--pki", locked_dir,
                            "--password-env", "FC_TEST_PW_WRONG"), "wrong password"),
        "no such kind": (("ledger", "show", "--ledger", ledger, "--run", "r1", "--kind", "nope"),
                         None),
    }  # fmt: skip
    env = {"FC_TEST_PW": "right", "FC_TEST_PW_WRONG": "wrong"}
    procs = {name: start(*args, env=env) for name, (args, _) in cases.items()}
    for name, proc in procs.items():
        result, words = finish(proc), cases[name][1]
        if words is None:  # a filter that matches nothing is not an error
            assert result.returncode == 0, result.stderr
            assert "0 entries" in result.stdout
            continue
        assert words in one_line_error(result), (name, result.stderr)
    assert {p: p.read_bytes() for p in before} == before
    assert not new.exists()


def test_init_then_show(locked_dir: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "fresh.sqlite"
    made = run("ledger", "init", "--ledger", ledger, "--pki", locked_dir,
               "--password-env", "FC_TEST_PW", env={"FC_TEST_PW": "right"})  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "created ledger" in made.stdout
    shown = run("ledger", "show", "--ledger", ledger)
    assert shown.returncode == 0, shown.stderr
    assert "locked: org1, org2 (aggregator org1)" in shown.stdout
    assert audit(ledger).entries == 1
