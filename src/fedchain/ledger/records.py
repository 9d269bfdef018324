"""Ledger record kinds, their schemas and size limits (the contract of ``docs/ledger.md``).

A record is a small JSON object. Every record has ``v`` (schema version, 1), ``kind`` and ``org``
(the organization that writes it, which must be the signer's). Records are validated here,
before any write rule runs, by a declarative schema that the chaincode mirrors field by field.
Validation is structural only: who may write what, and when, is :mod:`fedchain.ledger.rules`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fedchain.errors import RecordError
from fedchain.hashing import sha256_hex
from fedchain.ledger.canonical import canonical_json, loads

__all__ = [
    "KINDS",
    "MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "Record",
    "parse_record",
    "validate_record",
]

SCHEMA_VERSION: Final = 1
MAX_RECORD_BYTES: Final = 64 * 1024
MAX_LIST: Final = 1024
MAX_METRICS: Final = 64
MAX_TEXT: Final = 1024

_ORG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEYHEX = re.compile(r"(?:[0-9a-f]{2}){1,256}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")

Check = Callable[[Any, str], None]


def _fail(path: str, why: str) -> RecordError:
    return RecordError(f"{path}: {why}")


def _pattern(rx: re.Pattern[str], what: str) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str) or not rx.fullmatch(value):
            raise _fail(path, f"must be {what}, got {value!r:.80}")

    return check


def _int(lo: int, hi: int) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _fail(path, f"must be an integer in [{lo}, {hi}], got {value!r:.80}")

    return check


def _text(value: Any, path: str) -> None:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _fail(path, f"must be a string of at most {MAX_TEXT} characters")


def _optional(check: Check) -> Check:
    def inner(value: Any, path: str) -> None:
        if value is not None:
            check(value, path)

    return inner


def _enum(*allowed: str) -> Check:
    def check(value: Any, path: str) -> None:
        if value not in allowed:
            raise _fail(path, f"must be one of {', '.join(allowed)}, got {value!r:.80}")

    return check


def _list(item: Check, *, unique_by: str | None = None, min_len: int = 0) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list) or not min_len <= len(value) <= MAX_LIST:
            raise _fail(path, f"must be a list of {min_len}..{MAX_LIST} items")
        for i, element in enumerate(value):
            item(element, f"{path}[{i}]")
        if unique_by is not None:
            keys = [e[unique_by] if isinstance(e, dict) else e for e in value]
            if len(set(keys)) != len(keys):
                raise _fail(path, f"duplicate {unique_by or 'item'}")

    return check


def _object(fields: Mapping[str, Check]) -> Check:
    names = frozenset(fields)

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _fail(path, "must be an object")
        if value.keys() != names:  # the set arithmetic only when something is wrong
            missing = sorted(names - set(value))
            extra = sorted(set(value) - names)
            raise _fail(path, f"missing fields {missing}, unknown fields {extra}")
        for name, sub in fields.items():
            sub(value[name], f"{path}.{name}" if path else name)

    return check


def _metrics(value: Any, path: str) -> None:
    if not isinstance(value, dict) or len(value) > MAX_METRICS:
        raise _fail(path, f"must be an object of at most {MAX_METRICS} numbers")
    for key, number in value.items():
        _METRIC_NAME(key, f"{path} key")
        finite = isinstance(number, int | float) and not isinstance(number, bool)
        if not finite or (isinstance(number, float) and not math.isfinite(number)):
            raise _fail(f"{path}.{key}", f"must be a finite number, got {number!r:.80}")


_METRIC_NAME = _pattern(_NAME, "a metric name [A-Za-z0-9._:-]{1,64}")


def _keys(value: Any, path: str) -> None:
    if not isinstance(value, dict) or not 1 <= len(value) <= 8:
        raise _fail(path, "must be an object of 1..8 hex-encoded public keys")
    for name, key in value.items():
        _pattern(_NAME, "a key name")(name, f"{path} key")
        _pattern(_KEYHEX, "lowercase hex of at most 256 bytes")(key, f"{path}.{name}")


ORG = _pattern(_ORG, "an organization id [A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ID = _pattern(_ID, "an id [A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
HEX64 = _pattern(_HEX64, "a lowercase hex SHA-256")
ROUND = _int(0, 2**31 - 1)
SIZE = _int(0, 2**53 - 1)
_COMMON: dict[str, Check] = {"v": _int(SCHEMA_VERSION, SCHEMA_VERSION), "kind": _text, "org": ORG}

_SCHEMAS: dict[str, dict[str, Check]] = {
    "consortium": {
        "name": _pattern(_NAME, "a consortium name"),
        "aggregator": ORG,
        "orgs": _list(_object({"id": ORG, "ca_sha256": HEX64}), unique_by="id", min_len=1),
    },
    "run": {
        "run": ID,
        "app_sha256": HEX64,
        "strategy_sha256": HEX64,
        "model_sha256": HEX64,
        "config": _metrics,
    },
    "task": {
        "run": ID,
        "round": ROUND,
        "task": ID,
        "type": _pattern(_NAME, "a message type"),
        "model_sha256": _optional(HEX64),
        "deadline": SIZE,
        "recipients": _list(
            _object({"org": ORG, "payload_sha256": HEX64, "payload_size": SIZE}),
            unique_by="org",
            min_len=1,
        ),
    },
    "update": {
        "run": ID,
        "round": ROUND,
        "task": ID,
        "status": _enum("ok", "error"),
        "update_sha256": _optional(HEX64),
        "update_size": SIZE,
        "num_examples": SIZE,
        "metrics": _metrics,
        "error": _optional(_text),
    },
    "keys": {"run": ID, "round": ROUND, "task": ID, "keys": _keys},
    "selection": {
        "run": ID,
        "round": ROUND,
        "task": ID,
        "selected": _list(ORG, unique_by=""),
    },
    "close": {
        "run": ID,
        "round": ROUND,
        "model_sha256": _optional(HEX64),
        "aggregated": _list(_object({"org": ORG, "update_sha256": HEX64}), unique_by="org"),
        "dropouts": _list(_object({"org": ORG, "stage": _pattern(_NAME, "a stage")})),
        "rejected": _list(_object({"org": ORG, "reason": _text})),
        "metrics": _metrics,
    },
}

KINDS: Final = tuple(_SCHEMAS)
_VALIDATORS: Final = {kind: _object({**_COMMON, **fields}) for kind, fields in _SCHEMAS.items()}


@dataclass(frozen=True)
class Record:
    """A validated record; ``canonical`` are its bytes and ``hash`` their SHA-256 (hex)."""

    data: Mapping[str, Any]
    canonical: bytes = field(repr=False)
    hash: str

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    @property
    def org(self) -> str:
        return str(self.data["org"])

    @property
    def run(self) -> str | None:
        run = self.data.get("run")
        return None if run is None else str(run)

    @property
    def round(self) -> int | None:
        rnd = self.data.get("round")
        return None if rnd is None else int(rnd)

    @property
    def task(self) -> str | None:
        task = self.data.get("task")
        return None if task is None else str(task)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def validate_record(value: Any) -> dict[str, Any]:
    """Check a decoded record against its kind's schema (no encoding); return it as a dict.

    :func:`parse_record` is this plus the canonical encoding; audit uses this alone on bodies
    whose canonical form it checks another way.
    """
    if not isinstance(value, Mapping):
        raise RecordError("a record must be a JSON object")
    record: dict[str, Any] = dict(value)
    kind = record.get("kind")
    if not isinstance(kind, str) or kind not in _SCHEMAS:
        raise RecordError(f"kind: must be one of {', '.join(KINDS)}, got {kind!r:.80}")
    _VALIDATORS[kind](record, "")
    _check_consistency(record)
    return record


def parse_record(data: Mapping[str, Any] | bytes) -> Record:
    """Validate a record (a mapping or JSON bytes) and return it with its canonical bytes."""
    value = validate_record(loads(data) if isinstance(data, bytes | bytearray) else data)
    canonical = canonical_json(value)
    if len(canonical) > MAX_RECORD_BYTES:
        raise RecordError(f"record is {len(canonical)} bytes; the limit is {MAX_RECORD_BYTES}")
    return Record(data=loads(canonical), canonical=canonical, hash=sha256_hex(canonical))


def _check_consistency(value: dict[str, Any]) -> None:
    """Cross-field constraints a schema of independent fields cannot express."""
    if value["kind"] == "consortium":
        if value["aggregator"] not in {o["id"] for o in value["orgs"]}:
            raise RecordError("aggregator: must be one of the consortium's orgs")
    elif value["kind"] == "update":
        ok = value["status"] == "ok"
        if ok and (value["update_sha256"] is None or value["error"] is not None):
            raise RecordError("an ok update needs update_sha256 and no error")
        if not ok and (value["update_sha256"] is not None or not value["error"]):
            raise RecordError("an error update needs an error message and no update_sha256")
