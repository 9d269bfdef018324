"""Entry bodies of the embedded ledger: canonical bytes, strict decoding, signer checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import CertificateError, RecordError
from fedchain.ledger.canonical import canonical_json
from fedchain.ledger.chain import (
    GENESIS_PREV,
    SignerCache,
    consortium_record,
    decode_body,
    encode_body,
)
from fedchain.ledger.records import parse_record
from fedchain.pki import Consortium, create_ca, identity_dir, issue_identity, load_identity

VECTORS = Path(__file__).parents[1] / "vectors" / "ledger" / "canonical.json"
VALID = json.loads(VECTORS.read_text(encoding="utf-8"))["valid"]
CERT = "c0" * 32
PREV = "ab" * 32


def body_dict(record: dict[str, Any], seq: int = 7, ts: int = 1_700_000_000_123) -> dict[str, Any]:
    return {"prev": PREV, "record": record, "seq": seq, "ts": ts,
            "signer": {"org": record["org"], "cert_sha256": CERT}}  # fmt: skip


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["name"])
def test_encode_body_is_canonical_json_of_the_body(vector: dict[str, Any]) -> None:
    record = parse_record(vector["record"])
    body = encode_body(7, PREV, record, 1_700_000_000_123, record.org, CERT)
    assert body == canonical_json(body_dict(dict(record.data)))
    decoded = decode_body(body)
    assert (decoded.seq, decoded.prev, decoded.ts, decoded.org, decoded.cert_sha256) == (
        7, PREV, 1_700_000_000_123, record.org, CERT)  # fmt: skip
    assert decoded.record.canonical == record.canonical
    assert decoded.record.hash == record.hash


finite = st.floats(allow_nan=False, allow_infinity=False)
special = st.sampled_from([1e-7, 1e21, 5.0, -0.0, 1e16, 123456789.125, 2.0**60])
numbers = st.one_of(finite, st.integers(-(2**53) + 1, 2**53 - 1), special)
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(metrics=st.dictionaries(names, numbers, max_size=6), error=st.text(max_size=40))
def test_decode_agrees_with_the_exact_encoder(metrics: dict[str, Any], error: str) -> None:
    """The C-json fast path and the exact encoder give the same bytes for any record."""
    raw = {"v": 1, "kind": "update", "org": "org2", "run": "r1", "round": 3, "task": "t3",
           "status": "error" if error else "ok", "update_sha256": None if error else "ef" * 32,
           "update_size": 5, "num_examples": 3, "metrics": metrics,
           "error": error or None}  # fmt: skip
    try:
        record = parse_record(raw)
    except RecordError:
        return  # e.g. a lone surrogate in the text: refused before it reaches a body
    body = encode_body(1, PREV, record, 5, "org2", CERT)
    assert decode_body(body).record.canonical == record.canonical == canonical_json(raw)


GOOD = body_dict(VALID[0]["record"])


def _text(value: dict[str, Any]) -> str:
    return canonical_json(value).decode()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace(",", ", ", 1),  # whitespace
        lambda t: '{"seq":7,' + t[1:].replace(',"seq":7', ""),  # keys out of order
        lambda t: t[:-1] + ',"ts":1}',  # duplicate key
        lambda t: t.replace('"seq":7', '"seq":7.0'),  # float where an integer goes
        lambda t: t.replace('"seq":7', '"seq":"7"'),  # wrong type
        lambda t: t.replace('"org":"', '"org":"\\u006f', 1),  # needless escape
        lambda t: t[:-1] + ',"extra":1}',  # unknown field
        lambda t: t.replace(f'"prev":"{PREV}"', '"prev":"ABAB"'),  # malformed prev
        lambda t: t.replace('"kind":"', '"kind":"x', 1),  # record that fails its schema
        lambda t: t[:-2],  # truncated
    ],
)
def test_non_canonical_or_malformed_bodies_are_refused(mangle: Any) -> None:
    good = canonical_json(GOOD)
    decode_body(good)
    bad = mangle(_text(GOOD)).encode()
    assert bad != good
    with pytest.raises(RecordError):
        decode_body(bad)


def test_floats_in_python_repr_form_are_refused() -> None:
    record = parse_record({"v": 1, "kind": "close", "org": "org1", "run": "r1", "round": 1,
                           "model_sha256": None, "aggregated": [], "dropouts": [],
                           "rejected": [], "metrics": {"a": 1e-7, "b": 0.5}})  # fmt: skip
    body = encode_body(1, PREV, record, 5, "org1", CERT)
    assert b'"a":1e-7' in body
    decode_body(body)
    with pytest.raises(RecordError, match="canonical"):
        decode_body(body.replace(b'"a":1e-7', b'"a":1e-07'))


def test_consortium_record_names_every_ca(consortium: Consortium) -> None:
    record = consortium_record(consortium)
    assert record.kind == "consortium"
    assert record.org == consortium.aggregator
    assert {o["id"]: o["ca_sha256"] for o in record["orgs"]} == consortium.fingerprints()
    assert encode_body(0, GENESIS_PREV, record, 1, record.org, CERT).startswith(
        b'{"prev":"' + b"0" * 64
    )


def _der(ident: Any) -> bytes:
    return bytes(ident.cert.public_bytes(serialization.Encoding.DER))


def test_signer_cache_checks_chain_org_and_validity(
    consortium: Consortium, consortium_dir: Path
) -> None:
    member = load_identity(identity_dir(consortium_dir, "org2", "client1"))
    now = datetime.now(UTC)
    ca, ca_key = create_ca("org2", now=now)  # same org name, foreign CA
    foreign = issue_identity(ca, ca_key, org="org2", name="client1", role="client", now=now)
    cache = SignerCache(consortium, {member.fingerprint: _der(member)})
    cache.add(foreign.fingerprint, _der(foreign))
    cache.add("00" * 32, _der(member))  # stored under the wrong SHA-256
    ts = int(now.timestamp() * 1000)
    org, key = cache.check(member.fingerprint, ts)
    assert org == "org2"
    assert key.public_numbers() == member.cert.public_key().public_numbers()
    too_late = int((member.cert.not_valid_after_utc + timedelta(days=1)).timestamp() * 1000)
    with pytest.raises(CertificateError, match="not valid"):
        cache.check(member.fingerprint, too_late)
    with pytest.raises(CertificateError, match="does not verify"):
        cache.check(foreign.fingerprint, ts)
    with pytest.raises(CertificateError, match="another SHA-256"):
        cache.check("00" * 32, ts)
    with pytest.raises(CertificateError, match="not stored"):
        cache.check("11" * 32, ts)
