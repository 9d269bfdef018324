"""Shared ledger vectors: canonical bytes and write-rule outcomes (chaincode runs them too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fedchain.errors import RecordError, RuleViolation
from fedchain.hashing import sha256_hex
from fedchain.ledger import LedgerState, canonical_json, parse_record

VECTORS = Path(__file__).parents[1] / "vectors" / "ledger"
CANONICAL = json.loads((VECTORS / "canonical.json").read_text(encoding="utf-8"))
SEQUENCES = json.loads((VECTORS / "sequences.json").read_text(encoding="utf-8"))["scenarios"]


@pytest.mark.parametrize("vector", CANONICAL["valid"], ids=lambda v: v["name"])
def test_canonical_bytes_and_hash(vector: dict[str, Any]) -> None:
    record = parse_record(vector["record"])
    assert record.canonical.decode("utf-8") == vector["canonical"]
    assert record.hash == vector["sha256"] == sha256_hex(record.canonical)
    # Canonical bytes are a fixed point: parsing them again gives the same bytes.
    assert canonical_json(parse_record(record.canonical).data) == record.canonical


@pytest.mark.parametrize("vector", CANONICAL["invalid"], ids=lambda v: v["name"])
def test_invalid_records_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(RecordError):
        parse_record(vector["record"])


def _outcome(state: LedgerState, signer: str, raw: list[dict[str, Any]]) -> str:
    try:
        records = [parse_record(r) for r in raw]
    except RecordError:
        return "record.invalid"
    try:
        state.admit_all(records, signer)
    except RuleViolation as exc:
        return exc.rule
    return "ok"


@pytest.mark.parametrize("scenario", SEQUENCES, ids=lambda s: s["name"])
def test_write_sequences(scenario: dict[str, Any]) -> None:
    state = LedgerState()
    for i, step in enumerate(scenario["steps"]):
        assert _outcome(state, step["signer"], step["records"]) == step["expect"], f"step {i}"


def test_every_rule_has_a_vector() -> None:
    expected = {s["expect"] for sc in SEQUENCES for s in sc["steps"]}
    rules_py = (Path(__file__).parents[2] / "src/fedchain/ledger/rules.py").read_text()
    import re

    in_code = set(re.findall(r'RuleViolation\(\s*"([a-z_.]+)"', rules_py))
    assert in_code <= expected, f"rules without a vector: {sorted(in_code - expected)}"
