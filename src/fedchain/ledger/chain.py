"""Hash-chained, signed entries: the byte format shared by the embedded ledger and audit.

An entry's *body* is the canonical JSON (:mod:`fedchain.ledger.canonical`) of::

    {"prev": <hex SHA-256 of the previous body, 64 zeros for entry 0>,
     "record": <the record object>,
     "seq": <position, 0-based, contiguous>,
     "signer": {"cert_sha256": <hex SHA-256 of the signer's certificate DER>, "org": <org>},
     "ts": <Unix milliseconds when written>}

The entry hash is SHA-256 of the body bytes and the signature is the signer's ECDSA P-256
low-S DER signature over the body bytes. Because the body names its position and its
predecessor, a signature commits to where the record sits in the chain: a deleted, inserted or
reordered entry breaks the chain at the first place it touches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fedchain.errors import CertificateError, RecordError
from fedchain.hashing import sha256_hex
from fedchain.ledger.canonical import MAX_SAFE_INT, canonical_json, loads
from fedchain.ledger.records import MAX_RECORD_BYTES, Record, parse_record, validate_record
from fedchain.pki import Consortium, fingerprint

__all__ = [
    "GENESIS_PREV",
    "RECORD_AT",
    "Body",
    "Parts",
    "SignerCache",
    "consortium_record",
    "decode_body",
    "decode_parts",
    "encode_body",
    "ms_to_datetime",
]

GENESIS_PREV: Final = "0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ORG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_BODY_KEYS = frozenset({"prev", "record", "seq", "signer", "ts"})
_SIGNER_KEYS = frozenset({"cert_sha256", "org"})
#: Offset of the record object in a canonical body.
RECORD_AT: Final = len('{"prev":"","record":') + 64
_DECODER = json.JSONDecoder()
#: ``json.dumps`` with sorted keys and no whitespace equals canonical JSON for decoded records
#: (ASCII keys, safe integers, shallow) except floats whose ``repr`` differs from ECMAScript's
#: (``1e-07`` vs ``1e-7``): :func:`decode_body` checks those with the exact encoder. A unit
#: property test checks both agree.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class Body:
    """A decoded entry body (the record already validated against its schema)."""

    seq: int
    prev: str
    record: Record
    ts: int
    org: str
    cert_sha256: str


def encode_body(seq: int, prev: str, record: Record, ts: int, org: str, cert_sha256: str) -> bytes:
    """The canonical body bytes.

    Built by concatenation around ``record.canonical`` (already canonical) because that is
    several times faster than re-encoding the record; the key order is the sorted order and
    every other value is a hex string, an org id or an integer, none needing escapes. A unit
    test checks the result equals ``canonical_json`` of the same object.
    """
    _check_envelope(seq, prev, ts, org, cert_sha256)
    return b"".join((b'{"prev":"', prev.encode(), b'","record":', record.canonical,
                     _tail(seq, ts, org, cert_sha256)))  # fmt: skip


def _tail(seq: int, ts: int, org: str, cert_sha256: str) -> bytes:
    """Everything of a body after the record object."""
    return (f',"seq":{seq},"signer":{{"cert_sha256":"{cert_sha256}","org":"{org}"}},'
            f'"ts":{ts}}}').encode()  # fmt: skip


def _check_envelope(seq: Any, prev: Any, ts: Any, org: Any, cert_sha256: Any) -> None:
    for n in (seq, ts):
        if type(n) is not int or not 0 <= n <= MAX_SAFE_INT:
            raise RecordError("entry seq and ts must be integers in [0, 2^53-1]")
    for text, rx in ((prev, _HEX64), (cert_sha256, _HEX64), (org, _ORG)):
        if type(text) is not str or rx.fullmatch(text) is None:
            raise RecordError("entry envelope has a malformed prev hash, certificate hash or org")


def decode_body(body: bytes) -> Body:
    """Parse and validate body bytes; raise :class:`RecordError` saying what is wrong.

    The body must be exactly canonical (it is re-encoded and compared byte for byte), so two
    different byte strings can never stand for one entry, and duplicate keys are refused.
    Numbers follow JavaScript: an integer beyond 2^53 is a float, as in the chaincode.
    """
    seq, prev, ts, org, cert_sha, data, end, _ = decode_parts(body)
    canonical = body[RECORD_AT:end]
    record = Record(data=data, canonical=canonical, hash=sha256_hex(canonical))
    return Body(seq=seq, prev=prev, record=record, ts=ts, org=org, cert_sha256=cert_sha)


class Parts(NamedTuple):
    """What :func:`decode_parts` finds in a body; ``exact`` says C ``json`` reads the record
    exactly (no JavaScript-number corner case), so it may parse ``body[RECORD_AT:end]``."""

    seq: int
    prev: str
    ts: int
    org: str
    cert_sha256: str
    data: dict[str, Any]
    end: int
    exact: bool


def decode_parts(body: bytes) -> Parts:
    """:func:`decode_body` without building records: audit's worker processes use it and
    send back only the scalars (pickling record data costs more than parsing it again)."""
    try:  # C parser; JS number semantics restored below where they differ
        value = _DECODER.decode(body.decode("utf-8"))
    except ValueError as exc:
        raise RecordError(f"not valid UTF-8 JSON: {exc}") from exc
    seq, prev, ts, org, cert_sha = _envelope(value)
    data = validate_record(value["record"])
    tail = _tail(seq, ts, org, cert_sha)
    end = len(body) - len(tail)
    exact = _json_is_exact(data)
    if exact:  # fast path: C json writes exactly the canonical bytes
        value["record"] = data
        is_canonical = _utf8(_JSON.encode(value)) == body
    else:
        data = validate_record(loads(body)["record"])
        is_canonical = body == b"".join((body[:RECORD_AT], canonical_json(data), tail))
    if not is_canonical or body[:RECORD_AT] != b'{"prev":"%s","record":' % prev.encode():
        raise RecordError("entry body is not in canonical form")
    if end - RECORD_AT > MAX_RECORD_BYTES:
        raise RecordError(f"record is {end - RECORD_AT} bytes; the limit is {MAX_RECORD_BYTES}")
    return Parts(seq, prev, ts, org, cert_sha, data, end, exact)


def _envelope(value: Any) -> tuple[int, str, int, str, str]:
    """seq, prev, ts, signer org and certificate hash of a parsed body, checked."""
    if type(value) is not dict or value.keys() != _BODY_KEYS:
        raise RecordError(f"entry body must have exactly the fields {sorted(_BODY_KEYS)}")
    signer = value["signer"]
    if type(signer) is not dict or signer.keys() != _SIGNER_KEYS:
        raise RecordError("entry signer must have exactly the fields cert_sha256, org")
    seq, ts, prev = value["seq"], value["ts"], value["prev"]
    org, cert_sha = signer["org"], signer["cert_sha256"]
    _check_envelope(seq, prev, ts, org, cert_sha)
    return seq, prev, ts, org, cert_sha


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError("string contains a lone surrogate; not valid UTF-8") from exc


def _json_is_exact(value: dict[str, Any]) -> bool:
    """Whether C ``json`` reads and writes ``value`` exactly as canonical JSON does: every
    integer is within ±(2^53-1) and every float prints alike in Python and ECMAScript.

    A float qualifies when its ``repr`` is positional and not integral (``0.25``): there both
    languages print the same shortest digits. Others (``1e-07``, ``5.0``, ``-0.0``, and a few
    that would in fact print alike, such as ``1e+21``) take the exact path: slower, never wrong.
    """
    stack: list[Any] = [value]
    while stack:
        container = stack.pop()
        for item in container.values() if type(container) is dict else container:
            kind = type(item)
            if kind is int:
                if not -MAX_SAFE_INT <= item <= MAX_SAFE_INT:
                    return False
            elif kind is float:
                text = repr(item)
                if "e" in text or text.endswith(".0"):
                    return False
            elif kind is dict or kind is list:
                stack.append(item)
    return True


def consortium_record(consortium: Consortium) -> Record:
    """The genesis record describing ``consortium``, written by its aggregator."""
    orgs = [{"id": org, "ca_sha256": sha} for org, sha in sorted(consortium.fingerprints().items())]
    return parse_record(
        {"v": 1, "kind": "consortium", "org": consortium.aggregator, "name": consortium.name,
         "aggregator": consortium.aggregator, "orgs": orgs}
    )  # fmt: skip


def ms_to_datetime(ms: int) -> datetime:
    """A Unix-millisecond timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class _Signer:
    org: str
    key: ec.EllipticCurvePublicKey
    not_before_ms: int
    not_after_ms: int


class SignerCache:
    """Checks signer certificates against a consortium once each, then only their validity.

    ``org_of`` (chain, CA signature, subject) runs the first time a certificate is seen; later
    uses check only that the write time lies within the certificate's and its CA's validity,
    which is what makes verifying thousands of entries by a handful of signers fast.
    """

    def __init__(self, consortium: Consortium, certs: Mapping[str, bytes] | None = None) -> None:
        self.consortium = consortium
        self._der: dict[str, bytes] = dict(certs or {})
        self._checked: dict[str, _Signer] = {}

    def known(self, cert_sha256: str) -> bool:
        """Whether the certificate is known (added, or checked already)."""
        return cert_sha256 in self._der or cert_sha256 in self._checked

    def add(self, cert_sha256: str, der: bytes) -> None:
        """Make a certificate known by its SHA-256 (as stored in the ledger's ``certs``)."""
        self._der[cert_sha256] = der

    def check(self, cert_sha256: str, ts_ms: int) -> tuple[str, ec.EllipticCurvePublicKey]:
        """The org and public key of a certificate valid at ``ts_ms``; CertificateError if not."""
        signer = self._checked.get(cert_sha256)
        if signer is None:
            signer = self._first_check(cert_sha256, ts_ms)
            self._checked[cert_sha256] = signer
        if not signer.not_before_ms <= ts_ms <= signer.not_after_ms:
            raise CertificateError(f"certificate {cert_sha256[:12]} is not valid at ts {ts_ms}")
        return signer.org, signer.key

    def _first_check(self, cert_sha256: str, ts_ms: int) -> _Signer:
        der = self._der.get(cert_sha256)
        if der is None:
            raise CertificateError(f"certificate {cert_sha256[:12]} is not stored in the ledger")
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise CertificateError(f"certificate {cert_sha256[:12]} is not valid DER") from exc
        if fingerprint(cert) != cert_sha256:
            raise CertificateError(f"stored certificate {cert_sha256[:12]} has another SHA-256")
        org = self.consortium.org_of(cert, now=ms_to_datetime(ts_ms))
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise CertificateError(f"certificate {cert_sha256[:12]} has no EC public key")
        ca = self.consortium.cas[org]
        start = max(cert.not_valid_before_utc, ca.not_valid_before_utc)
        end = min(cert.not_valid_after_utc, ca.not_valid_after_utc)
        return _Signer(org, key, int(start.timestamp() * 1000), int(end.timestamp() * 1000))
