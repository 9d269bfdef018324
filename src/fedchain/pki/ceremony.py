"""The key ceremony: organizations form a consortium from public material only.

Each organization creates its own CAs and identities on its own machine
(:func:`fedchain.pki.store.init_org`) and exports a **bundle** of public material: its signing
CA, its TLS CA and its admin's signing certificate. Someone assembles the bundles into a
**definition** (name, aggregator, version, the bundles, the SHA-256 of the definition it
replaces). Every member's admin **signs** it, after checking each other member's bundle
fingerprint against the one that member told it out of band. A definition is accepted
(:func:`join`) only with the signatures of *all* its members, as Fabric needs the admins of the
organizations to create a channel: no organization is enrolled, and none is added later,
without every member's consent, and nobody needs anyone else's private key.

Adding an organization is a new definition (``version + 1``, ``previous_sha256`` naming the one
it replaces) holding every earlier bundle unchanged, signed again by every member, new one
included. :func:`join` refuses a definition that neither is the one a folder holds nor extends
it, so a stale or forked definition cannot replace a newer one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from fedchain.errors import CertificateError, PKIError, SignatureError
from fedchain.hashing import sha256_hex
from fedchain.pki.certs import ca_kind, role_of, subject_attr, validate_id
from fedchain.pki.consortium import Consortium
from fedchain.pki.msp import load_cert
from fedchain.pki.signing import verify_signature

__all__ = [
    "BUNDLE_FORMAT",
    "DEFINITION_FILE",
    "DEFINITION_FORMAT",
    "Definition",
    "OrgBundle",
    "parse_bundle",
    "parse_definition",
    "propose",
    "read_bundle",
]

BUNDLE_FORMAT = "fedchain-org-bundle/1"
DEFINITION_FORMAT = "fedchain-consortium-definition/1"
#: Where a consortium folder keeps the definition it joined.
DEFINITION_FILE = "consortium-definition.json"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _cert(doc: Mapping[str, Any], key: str, where: str) -> x509.Certificate:
    value = doc.get(key)
    if not isinstance(value, str):
        raise PKIError(f"{where}: '{key}' must be a PEM certificate")
    try:
        return x509.load_pem_x509_certificate(value.encode())
    except ValueError as exc:
        raise PKIError(f"{where}: '{key}' is not a PEM certificate") from exc


@dataclass(frozen=True)
class OrgBundle:
    """An organization's public material: its two CAs and its admin's signing certificate."""

    org: str
    ca: x509.Certificate = field(repr=False)
    tlsca: x509.Certificate = field(repr=False)
    admin: x509.Certificate = field(repr=False)

    def doc(self) -> dict[str, str]:
        return {"org": self.org, "ca": _pem(self.ca), "tlsca": _pem(self.tlsca),
                "admin": _pem(self.admin)}  # fmt: skip

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the bundle's canonical form: the one value to compare out of band."""
        return sha256_hex(_canonical(self.doc()))

    def to_json(self) -> bytes:
        return json.dumps({"format": BUNDLE_FORMAT, **self.doc()}, indent=2).encode() + b"\n"

    def check(self) -> None:
        """Both CAs self-signed CAs of this org, of their kinds and distinct; the admin a valid
        admin certificate issued by the signing CA (CertificateError / PKIError otherwise)."""
        validate_id(self.org)
        for cert, kind in ((self.ca, "ca"), (self.tlsca, "tlsca")):
            if subject_attr(cert, x509.oid.NameOID.ORGANIZATION_NAME) != [self.org]:
                raise PKIError(f"bundle of {self.org!r}: its {kind} names another organization")
            if ca_kind(cert) != kind or cert.issuer != cert.subject:
                raise PKIError(f"bundle of {self.org!r}: '{kind}' is not a self-signed {kind}")
        try:
            self.ca.verify_directly_issued_by(self.ca)
            self.tlsca.verify_directly_issued_by(self.tlsca)
            self.admin.verify_directly_issued_by(self.ca)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise PKIError(
                f"bundle of {self.org!r}: a signature fails (CA self-signature, or the admin "
                "certificate not issued by the signing CA)"
            ) from exc
        # Validity periods are checked where certificates are used (Consortium.org_of).
        admin_orgs = subject_attr(self.admin, x509.oid.NameOID.ORGANIZATION_NAME)
        if admin_orgs != [self.org] or role_of(self.admin) != "admin":
            raise PKIError(f"bundle of {self.org!r}: 'admin' is not an admin of {self.org!r}")
        Consortium(name="bundle", aggregator=self.org, cas={self.org: self.ca},
                   tls_cas={self.org: self.tlsca})  # distinct CAs  # fmt: skip


def _document(data: bytes, where: str, fmt: str, what: str) -> dict[str, Any]:
    """The JSON object in ``data`` whose ``format`` is ``fmt`` (PKIError otherwise)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise PKIError(f"{where} is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise PKIError(f"{where} is not a fedchain {what} ({fmt})")
    return doc


def _bundle(doc: Mapping[str, Any], where: str) -> OrgBundle:
    """An :class:`OrgBundle` from its fields, checked."""
    org = doc.get("org")
    if not isinstance(org, str):
        raise PKIError(f"{where}: 'org' must be an organization id")
    bundle = OrgBundle(org, _cert(doc, "ca", where), _cert(doc, "tlsca", where),
                       _cert(doc, "admin", where))  # fmt: skip
    bundle.check()
    return bundle


def parse_bundle(data: bytes, where: str = "bundle") -> OrgBundle:
    """An :class:`OrgBundle` from its JSON, checked (PKIError if malformed or inconsistent)."""
    return _bundle(_document(data, where, BUNDLE_FORMAT, "organization bundle"), where)


def read_bundle(pki_dir: Path, org: str) -> OrgBundle:
    """The bundle of ``org`` from a folder holding its public MSP and its admin."""
    base = pki_dir / validate_id(org)
    bundle = OrgBundle(
        org,
        load_cert(base / "msp" / "cacerts" / "ca.pem"),
        load_cert(base / "msp" / "tlscacerts" / "ca.pem"),
        load_cert(base / "users" / "admin" / "msp" / "signcerts" / "cert.pem"),
    )
    bundle.check()
    return bundle


@dataclass(frozen=True)
class Definition:
    """A consortium definition and the member signatures it has collected so far."""

    name: str
    aggregator: str
    version: int
    previous_sha256: str | None
    orgs: tuple[OrgBundle, ...]
    signatures: Mapping[str, bytes] = field(default_factory=dict)

    def payload(self) -> bytes:
        """What every member signs: the definition without its signatures, canonical JSON."""
        return _canonical({
            "format": DEFINITION_FORMAT, "name": self.name, "aggregator": self.aggregator,
            "version": self.version, "previous_sha256": self.previous_sha256,
            "orgs": [b.doc() for b in self.orgs],
        })  # fmt: skip

    @property
    def sha256(self) -> str:
        return sha256_hex(self.payload())

    def bundle(self, org: str) -> OrgBundle:
        for b in self.orgs:
            if b.org == org:
                return b
        raise PKIError(f"{org!r} is not a member of consortium {self.name!r}")

    def consortium(self) -> Consortium:
        return Consortium(
            name=self.name, aggregator=self.aggregator,
            cas={b.org: b.ca for b in self.orgs}, tls_cas={b.org: b.tlsca for b in self.orgs},
        )  # fmt: skip

    def to_json(self) -> bytes:
        doc = json.loads(self.payload())
        doc["signatures"] = {
            org: base64.b64encode(sig).decode() for org, sig in sorted(self.signatures.items())
        }
        return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"

    def with_signature(self, org: str, signature: bytes) -> Definition:
        self.bundle(org)
        return replace(self, signatures={**self.signatures, org: signature})

    def unsigned(self) -> list[str]:
        return [b.org for b in self.orgs if b.org not in self.signatures]

    def verify(self) -> None:
        """Every member signed, and every signature verifies with that member's admin."""
        self._check_shape()
        missing = self.unsigned()
        if missing:
            raise PKIError(
                f"consortium definition {self.name!r} v{self.version} lacks the signatures of "
                f"{', '.join(missing)}: every member's admin must sign it"
            )
        payload = self.payload()
        for b in self.orgs:
            try:
                verify_signature(b.admin, payload, self.signatures[b.org])
            except (SignatureError, CertificateError) as exc:
                raise SignatureError(
                    f"the signature of {b.org!r} on consortium definition {self.name!r} "
                    f"v{self.version} does not verify"
                ) from exc

    def _check_shape(self) -> None:
        validate_id(self.name, "consortium name")
        if self.version < 1:
            raise PKIError("a consortium definition's version starts at 1")
        if (self.version == 1) != (self.previous_sha256 is None):
            raise PKIError("version 1 has no previous definition; every later version names one")
        ids = [b.org.casefold() for b in self.orgs]
        if len(set(ids)) != len(ids):
            raise PKIError(f"consortium definition {self.name!r} names an organization twice")
        for b in self.orgs:
            b.check()
        self.consortium()  # aggregator a member; TLS CAs distinct from signing CAs
        stray = sorted(set(self.signatures) - {b.org for b in self.orgs})
        if stray:
            raise PKIError(f"signatures from non-members: {', '.join(stray)}")


def propose(
    name: str,
    aggregator: str,
    bundles: Sequence[OrgBundle],
    previous: Definition | None = None,
) -> Definition:
    """A new, unsigned definition; with ``previous``, its successor (members may only join)."""
    orgs = tuple(sorted(bundles, key=lambda b: b.org))
    if previous is not None:
        if name != previous.name:
            raise PKIError(f"the previous definition is of consortium {previous.name!r}")
        kept = {b.org: b for b in orgs}
        for old in previous.orgs:
            if old.org not in kept:
                raise PKIError(f"{old.org!r} is a member; removing a member is not supported")
            if kept[old.org].doc() != old.doc():
                raise PKIError(f"the bundle of {old.org!r} differs from the one it joined with")
    defn = Definition(
        name=name, aggregator=aggregator,
        version=1 if previous is None else previous.version + 1,
        previous_sha256=None if previous is None else previous.sha256, orgs=orgs,
    )  # fmt: skip
    defn._check_shape()
    return defn


def parse_definition(data: bytes, where: str = "definition") -> Definition:
    """A :class:`Definition` from its JSON (shape checked; signatures not verified)."""
    doc = _document(data, where, DEFINITION_FORMAT, "consortium definition")
    orgs, sigs = doc.get("orgs"), doc.get("signatures", {})
    ok = (
        isinstance(doc.get("name"), str) and isinstance(doc.get("aggregator"), str)
        and type(doc.get("version")) is int and isinstance(orgs, list)
        and all(isinstance(o, dict) for o in orgs) and isinstance(sigs, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in sigs.items())
        and (doc.get("previous_sha256") is None or isinstance(doc["previous_sha256"], str))
    )  # fmt: skip
    if not ok:
        raise PKIError(f"{where} is not a well-formed consortium definition")
    bundles = tuple(_bundle(o, f"{where} orgs") for o in orgs or ())
    try:
        signatures = {k: base64.b64decode(v, validate=True) for k, v in sigs.items()}
    except ValueError as exc:
        raise PKIError(f"{where}: a signature is not base64") from exc
    defn = Definition(doc["name"], doc["aggregator"], doc["version"],
                      doc.get("previous_sha256"), bundles, signatures)  # fmt: skip
    if defn.orgs != tuple(sorted(bundles, key=lambda b: b.org)):
        raise PKIError(f"{where}: organizations must be sorted by id")
    defn._check_shape()
    return defn
