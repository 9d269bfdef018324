"""The embedded ledger's edges: opening, identities, bad input (ledger unchanged), factory."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from tests.conformance.ledger_suite import run_record, task_record

from fedchain.config import LedgerSettings
from fedchain.errors import (
    CertificateError,
    LedgerCorrupted,
    LedgerError,
    LedgerNotFound,
    PKIError,
    RecordError,
    RuleViolation,
)
from fedchain.ledger import MAX_RECORD_BYTES, Query, parse_record
from fedchain.ledger.chain import encode_body
from fedchain.ledger.embedded import MAX_BATCH, EmbeddedLedger, store_entry
from fedchain.ledger.factory import open_ledger
from fedchain.ledger.memory import MemoryLedger
from fedchain.pki import (
    AGGREGATOR_NAME,
    Consortium,
    Identity,
    identity_dir,
    init_consortium,
    load_identity,
)


@pytest.fixture
def ids(consortium_dir: Path) -> dict[str, Identity]:
    names = {"org1": AGGREGATOR_NAME, "org2": "client1", "org3": "client1"}
    return {o: load_identity(identity_dir(consortium_dir, o, n)) for o, n in names.items()}


@pytest.fixture
def path(tmp_path: Path, consortium: Consortium, ids: dict[str, Identity]) -> Path:
    target = tmp_path / "ledger.sqlite"
    EmbeddedLedger.create(target, consortium, ids["org1"]).close()
    return target


@pytest.fixture(scope="module")
def foreign_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another consortium with the same org names but CAs of its own."""
    out = tmp_path_factory.mktemp("foreign") / "pki"
    init_consortium(out, consortium="testnet", orgs=("org1", "org2", "org3"), aggregator="org1")
    return out


def dump(path: Path) -> list[str]:
    """Every row of every table, as SQL (the ledger's full content)."""
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_create_writes_a_signed_genesis_and_refuses_to_overwrite(
    path: Path, consortium: Consortium, ids: dict[str, Identity]
) -> None:
    with EmbeddedLedger.open(path) as ledger:
        (genesis,) = ledger.metadata_get()
    assert genesis.seq == 0
    assert genesis.record.kind == "consortium"
    assert genesis.signer == consortium.aggregator
    before = dump(path)
    with pytest.raises(LedgerError, match="already exists"):
        EmbeddedLedger.create(path, consortium, ids["org1"])
    assert dump(path) == before
    assert sorted(p.name for p in path.parent.iterdir() if "creating" in p.name) == []


def test_only_the_aggregator_creates(tmp_path: Path, consortium: Consortium,
                                     ids: dict[str, Identity]) -> None:  # fmt: skip
    with pytest.raises(CertificateError, match="aggregator"):
        EmbeddedLedger.create(tmp_path / "l.sqlite", consortium, ids["org2"])
    assert not (tmp_path / "l.sqlite").exists()


def test_clock_is_injected(path: Path, ids: dict[str, Identity]) -> None:
    clock = ids["org1"].cert.not_valid_before_utc.timestamp() + 3600.25
    with EmbeddedLedger.open(path, ids["org1"], clock=lambda: clock) as ledger:
        (entry,) = ledger.metadata_publish(parse_record(run_record()))
    assert entry.ts == int(clock * 1000)


def test_expired_certificate_cannot_write(path: Path, ids: dict[str, Identity]) -> None:
    now = [ids["org1"].cert.not_valid_before_utc.timestamp() + 60]
    with EmbeddedLedger.open(path, ids["org1"], clock=lambda: now[0]) as ledger:
        before = dump(path)
        now[0] = (ids["org1"].cert.not_valid_after_utc + timedelta(days=1)).timestamp()
        with pytest.raises(CertificateError, match="not valid"):
            ledger.metadata_publish(parse_record(run_record()))
    assert dump(path) == before


def test_identity_outside_the_consortium_is_refused(path: Path, foreign_dir: Path) -> None:
    stranger = load_identity(identity_dir(foreign_dir, "org2", "client1"))
    with pytest.raises(CertificateError):
        EmbeddedLedger.open(path, stranger)


def test_a_key_that_is_not_the_certificate_s_is_refused(
    path: Path, ids: dict[str, Identity]
) -> None:
    """org2's key under org3's certificate would store entries "from org3" (issue 12)."""
    before = dump(path)
    forged = replace(ids["org3"], key=ids["org2"].key)
    with pytest.raises(PKIError, match="not the one its certificate names"):
        EmbeddedLedger.open(path, forged)
    assert dump(path) == before


def test_a_ledger_of_another_consortium_is_refused(
    path: Path, foreign_dir: Path, ids: dict[str, Identity]
) -> None:
    from fedchain.pki import load_consortium

    with pytest.raises(LedgerError, match="another consortium"):
        EmbeddedLedger.open(path, ids["org2"], consortium=load_consortium(foreign_dir))


def test_read_only_handle_cannot_write(path: Path) -> None:
    with EmbeddedLedger.open(path) as ledger:
        assert ledger.org == ""
        with pytest.raises(LedgerError, match="read-only"):
            ledger.metadata_publish(parse_record(run_record()))


def _oversized() -> dict[str, Any]:
    """A task to 1024 recipients: every field valid, the whole over MAX_RECORD_BYTES."""
    task = task_record("t1", 1)
    task["recipients"] = [dict(task["recipients"][0], org=f"org{i}") for i in range(1024)]
    return task


BAD_RECORDS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("not an object", lambda: ["run"], RecordError, "JSON object"),
    ("unknown kind", lambda: {**run_record(), "kind": "delete"}, RecordError, "kind"),
    ("wrong type", lambda: {**run_record(), "config": {"rounds": "two"}}, RecordError, "config"),
    ("missing field", lambda: {k: v for k, v in run_record().items() if k != "run"},
     RecordError, "missing"),
    ("extra field", lambda: {**run_record(), "admin": True}, RecordError, "unknown fields"),
    ("bad hash", lambda: {**run_record(), "model_sha256": "xyz"}, RecordError, "SHA-256"),
    ("oversized", _oversized, RecordError, f"limit is {MAX_RECORD_BYTES}"),
    ("unknown org", lambda: task_record("t1", 1) | {"recipients": [
        {"org": "org9", "payload_sha256": "cd" * 32, "payload_size": 1}]},
     RuleViolation, "org.unknown"),
    ("as another org", lambda: {**run_record(), "org": "org2"}, RuleViolation, "identity"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "error", "match"), BAD_RECORDS,
                         ids=[b[0] for b in BAD_RECORDS])  # fmt: skip
def test_bad_records_leave_the_ledger_unchanged(
    path: Path, ids: dict[str, Identity], name: str, make: Callable[[], Any],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    with EmbeddedLedger.open(path, ids["org1"]) as ledger:
        ledger.metadata_publish(parse_record(run_record()))
        before = dump(path)
        raw = make()
        with pytest.raises(error, match=match):
            ledger.metadata_publish([parse_record(raw)] if isinstance(raw, dict) else raw)
        assert dump(path) == before
        ledger.metadata_publish(parse_record(task_record("t1", 1)))  # still writable


def test_too_large_a_batch_is_refused(path: Path, ids: dict[str, Identity]) -> None:
    batch = [parse_record(run_record(f"r{i}")) for i in range(MAX_BATCH + 1)]
    with EmbeddedLedger.open(path, ids["org1"]) as ledger:
        before = dump(path)
        with pytest.raises(RecordError, match="batch"):
            ledger.metadata_publish(batch)
    assert dump(path) == before


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100, None])
def test_missing_or_non_ledger_files_are_not_found(tmp_path: Path, content: bytes | None) -> None:
    target = tmp_path / "x.sqlite"
    if content is not None:
        target.write_bytes(content)
    with pytest.raises(LedgerNotFound):
        EmbeddedLedger.open(target)
    assert (target.read_bytes() if content is not None else None) == content


def test_other_sqlite_files_and_folders_are_not_ledgers(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    before = dump(other)
    for target in (other, tmp_path):
        with pytest.raises(LedgerNotFound):
            EmbeddedLedger.open(target)
    assert dump(other) == before


def test_history_is_append_only_at_the_sql_level(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        for sql in ("UPDATE entries SET kind = 'run'", "DELETE FROM entries",
                    "DELETE FROM cas", "UPDATE certs SET der = x'00'"):  # fmt: skip
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)


def test_a_writer_catches_up_and_refuses_to_extend_a_broken_chain(
    path: Path, ids: dict[str, Identity]
) -> None:
    agg, org2 = EmbeddedLedger.open(path, ids["org1"]), EmbeddedLedger.open(path, ids["org2"])
    agg.metadata_publish([parse_record(run_record()), parse_record(task_record("t1", 1))])
    update = {"v": 1, "kind": "update", "org": "org2", "run": "r1", "round": 1, "task": "t1",
              "status": "ok", "update_sha256": "ef" * 32, "update_size": 5, "num_examples": 3,
              "metrics": {}, "error": None}  # fmt: skip
    (entry,) = org2.metadata_publish(parse_record(update))  # knows t1 from the other handle
    assert entry.seq == 3
    with pytest.raises(RuleViolation, match=r"update\.duplicate"):
        org2.metadata_publish(parse_record(update))
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER entries_no_update")
        conn.execute("UPDATE entries SET body = CAST(body || ' ' AS BLOB) WHERE seq = 3")
    with pytest.raises(LedgerCorrupted) as info:
        EmbeddedLedger.open(path, ids["org1"]).metadata_publish(parse_record(run_record("r2")))
    assert info.value.seq == 3
    agg.close()
    org2.close()


def _forge(path: Path, writer: Identity, claimed: Identity, record: dict[str, Any]) -> None:
    """What modified code can do with the file alone: append, with a correct hash chain, an
    entry in ``claimed``'s name (its org and certificate) signed with ``writer``'s key."""
    with sqlite3.connect(path) as conn:
        seq, prev = conn.execute("SELECT seq, hash FROM entries ORDER BY seq DESC").fetchone()
        body = encode_body(seq + 1, bytes(prev).hex(), parse_record(record), 1, claimed.org,
                           claimed.fingerprint)  # fmt: skip
        conn.execute("INSERT OR IGNORE INTO certs (sha256, der) VALUES (?, ?)",
                     (claimed.fingerprint, claimed.cert.public_bytes(Encoding.DER)))  # fmt: skip
        store_entry(conn, seq + 1, body, writer.sign(body), parse_record(record))


def test_readers_refuse_an_entry_signed_by_another_organization(
    path: Path, ids: dict[str, Identity]
) -> None:
    """org2 forges an update 'from org3' into the file: every reader refuses it at once (the
    aggregator used to act on it and refuse org3's real update as a duplicate)."""
    agg = EmbeddedLedger.open(path, ids["org1"])
    agg.metadata_publish([parse_record(run_record()), parse_record(task_record("t1", 1))])
    update = {"v": 1, "kind": "update", "org": "org3", "run": "r1", "round": 1, "task": "t1",
              "status": "ok", "update_sha256": "ef" * 32, "update_size": 5, "num_examples": 3,
              "metrics": {}, "error": None}  # fmt: skip
    _forge(path, ids["org2"], ids["org3"], update)
    for read in (lambda: agg.wait(2, 0), lambda: agg.metadata_get(Query(kind="update")),
                 lambda: EmbeddedLedger.open(path).metadata_get(),
                 lambda: EmbeddedLedger.open(path, ids["org3"]).metadata_publish(
                     parse_record(update))):  # fmt: skip
        with pytest.raises(LedgerCorrupted, match="signature does not verify") as info:
            read()
        assert info.value.seq == 3
    agg.close()


def test_an_honest_entry_is_read_and_verified_once_per_process(
    path: Path, ids: dict[str, Identity], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedchain.ledger import embedded_read

    with EmbeddedLedger.open(path, ids["org1"]) as agg:
        agg.metadata_publish(parse_record(run_record()))
    monkeypatch.setattr(embedded_read, "_VERIFIED", set())  # as in a process that only reads
    calls: list[bytes] = []
    real = embedded_read.verify_signature

    def counting(key: Any, body: bytes, sig: bytes) -> None:
        calls.append(body)
        real(key, body, sig)

    monkeypatch.setattr(embedded_read, "verify_signature", counting)
    with EmbeddedLedger.open(path) as reader:
        first = reader.metadata_get()
        assert reader.metadata_get() == first
        assert reader.wait(-1, 0) == first
    assert len(calls) == len(first) == 2
    with EmbeddedLedger.open(path) as again:  # another handle of the same process
        assert again.metadata_get() == first
    assert len(calls) == 2


def test_many_entries_are_verified_on_threads_and_a_forgery_among_them_is_named(
    path: Path, ids: dict[str, Identity], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedchain.ledger import embedded_read

    with EmbeddedLedger.open(path, ids["org1"]) as agg:
        agg.metadata_publish([parse_record(run_record(f"r{i}")) for i in range(150)])
    monkeypatch.setattr(embedded_read, "_VERIFIED", set())
    threads: set[str] = set()
    real = embedded_read.verify_signature

    def noting(key: Any, body: bytes, sig: bytes) -> None:
        threads.add(threading.current_thread().name)
        real(key, body, sig)

    monkeypatch.setattr(embedded_read, "verify_signature", noting)
    with EmbeddedLedger.open(path) as reader:
        assert len(reader.metadata_get()) == 151
    if embedded_read._THREADS > 1:
        assert all(name.startswith("ledger-verify") for name in threads)
    monkeypatch.setattr(embedded_read, "_VERIFIED", set())
    with sqlite3.connect(path) as conn:  # entry 77 gets entry 76's signature
        conn.execute("DROP TRIGGER entries_no_update")
        sig = conn.execute("SELECT sig FROM entries WHERE seq = 76").fetchone()[0]
        conn.execute("UPDATE entries SET sig = ? WHERE seq = 77", (sig,))
    conn.close()
    with EmbeddedLedger.open(path) as reader, pytest.raises(LedgerCorrupted, match="entry 77"):
        reader.metadata_get()


def test_factory_picks_the_backend(path: Path, consortium: Consortium,
                                   ids: dict[str, Identity]) -> None:  # fmt: skip
    embedded = open_ledger(LedgerSettings(backend="embedded", path=path), ids["org2"], consortium)
    assert isinstance(embedded, EmbeddedLedger)
    assert embedded.org == "org2"
    assert embedded.head() == 0
    embedded.close()
    settings = LedgerSettings(backend="memory", path=Path("mem"))
    first = open_ledger(settings, ids["org1"], consortium)
    second = open_ledger(settings, ids["org2"], consortium)
    assert isinstance(first, MemoryLedger)
    first.metadata_publish(parse_record(run_record()))
    assert [e.record.kind for e in second.metadata_get(Query())] == ["consortium", "run"]
    with pytest.raises(LedgerNotFound):
        open_ledger(LedgerSettings(backend="embedded", path=path.with_name("no")), None, consortium)


def test_javascript_number_corners_survive_write_read_and_audit(
    path: Path, ids: dict[str, Identity]
) -> None:
    """Floats that Python prints differently from JavaScript (1e-7, 2^60, -0.0) take the
    exact decoder everywhere: the reader and audit see what the writer wrote."""
    from fedchain.ledger.audit import audit

    record = parse_record(run_record() | {"config": {"big": 2.0**60, "tiny": 1e-7, "z": -0.0}})
    with EmbeddedLedger.open(path, ids["org1"]) as ledger:
        ledger.metadata_publish(record)
        (got,) = ledger.metadata_get(Query(kind="run"))
    assert got.record.canonical == record.canonical
    assert got.record.data == record.data
    assert isinstance(got.record["config"]["big"], float)
    assert audit(path).entries == 2
