"""The consortium: which organizations take part, their CAs, and who aggregates.

:meth:`Consortium.org_of` (signing certificates, against the signing CAs) and
:meth:`Consortium.tls_org_of` (mTLS peers, against the TLS CAs) are the one place that decides
which organization a presented certificate belongs to; the ledger and the transport use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from fedchain.errors import CertificateError, PKIError
from fedchain.pki.certs import fingerprint, subject_attr, validate_id

__all__ = ["Consortium"]


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateError(
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}"
        )
    if now > cert.not_valid_after_utc:
        raise CertificateError(f"{what} expired on {cert.not_valid_after_utc.isoformat()}")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True)
class Consortium:
    """The organizations of one federation, each trusted through its own CA certificates.

    ``cas`` are the signing CAs (ledger records, Fabric identities); ``tls_cas`` the TLS CAs of
    the mTLS data plane. ``tls_cas`` may be empty for a consortium read back from a ledger,
    which only verifies signers.
    """

    name: str
    aggregator: str
    cas: Mapping[str, x509.Certificate] = field(repr=False)
    tls_cas: Mapping[str, x509.Certificate] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        validate_id(self.name, "consortium name")
        if not self.cas:
            raise PKIError("a consortium needs at least one organization")
        for what, cas in (("CA", self.cas), ("TLS CA", self.tls_cas)):
            for org, ca in cas.items():
                validate_id(org)
                if subject_attr(ca, NameOID.ORGANIZATION_NAME) != [org]:
                    raise PKIError(f"{what} certificate of {org!r} does not name O={org}")
        if self.tls_cas and set(self.tls_cas) != set(self.cas):
            raise PKIError("the TLS CAs must be of the same organizations as the signing CAs")
        if self.tls_cas and any(self.tls_cas[o].subject == self.cas[o].subject for o in self.cas):
            raise PKIError("an organization's TLS CA must be another CA than its signing CA")
        if self.aggregator not in self.cas:
            raise PKIError(f"aggregator {self.aggregator!r} is not one of the organizations")
        for name in ("cas", "tls_cas"):
            cas = getattr(self, name)
            object.__setattr__(self, name, MappingProxyType({o: cas[o] for o in sorted(cas)}))

    @property
    def orgs(self) -> tuple[str, ...]:
        """Organization ids, sorted."""
        return tuple(sorted(self.cas))

    def fingerprints(self) -> dict[str, str]:
        """Organization id -> SHA-256 hex of its CA certificate."""
        return {org: fingerprint(ca) for org, ca in self.cas.items()}

    def tls_fingerprints(self) -> dict[str, str]:
        """Organization id -> SHA-256 hex of its TLS CA certificate."""
        return {org: fingerprint(ca) for org, ca in self.tls_cas.items()}

    def tls_ca_pem(self, org: str) -> bytes:
        """The TLS CA of ``org`` in PEM (PKIError if this consortium has none)."""
        if org not in self.tls_cas:
            raise PKIError(f"consortium {self.name!r} has no TLS CA for {org!r}")
        return self.tls_cas[org].public_bytes(serialization.Encoding.PEM)

    def tls_ca_bundle_pem(self) -> bytes:
        """All TLS CA certificates as concatenated PEM, sorted by org (gRPC root certificates)."""
        return b"".join(self.tls_ca_pem(org) for org in self.orgs)

    def org_of(self, cert: x509.Certificate, *, now: datetime | None = None) -> str:
        """Return the organization whose signing CA issued ``cert``, after checking it fully.

        Checks: the issuer is one org's CA subject, that CA's signature is valid, the
        certificate (and its CA) are within validity at ``now``, it is not itself a CA, and
        its subject ``O`` names the same org. Raises :class:`CertificateError` otherwise.
        """
        return _org_by(self.cas, self.name, "CA", cert, now)

    def tls_org_of(self, cert: x509.Certificate, *, now: datetime | None = None) -> str:
        """As :meth:`org_of`, for a TLS certificate against the organizations' TLS CAs."""
        return _org_by(self.tls_cas, self.name, "TLS CA", cert, now)


def _org_by(
    cas: Mapping[str, x509.Certificate],
    consortium: str,
    what: str,
    cert: x509.Certificate,
    now: datetime | None,
) -> str:
    """The org in ``cas`` that issued ``cert`` (see :meth:`Consortium.org_of`)."""
    when = datetime.now(UTC) if now is None else now
    if when.tzinfo is None:
        raise PKIError("'now' must be a timezone-aware datetime")
    subject = cert.subject.rfc4514_string()
    candidates = [org for org, ca in cas.items() if ca.subject == cert.issuer]
    if not candidates:
        raise CertificateError(
            f"certificate {subject} was issued by {cert.issuer.rfc4514_string()}, "
            f"which is not a {what} of consortium {consortium!r}"
        )
    org = _verified_issuer(cas, cert, candidates)
    if _is_ca(cert):
        raise CertificateError(f"certificate {subject} is a CA, not an identity")
    _check_validity(cas[org], when, f"{what} certificate of {org!r}")
    _check_validity(cert, when, f"certificate {subject}")
    claimed = subject_attr(cert, NameOID.ORGANIZATION_NAME)
    if claimed != [org]:
        raise CertificateError(
            f"certificate {subject} claims organization {claimed} but was issued by "
            f"the {what} of {org!r}"
        )
    return org


def _verified_issuer(
    cas: Mapping[str, x509.Certificate], cert: x509.Certificate, candidates: list[str]
) -> str:
    """The first candidate org whose CA signature over ``cert`` verifies."""
    for org in candidates:
        try:
            cert.verify_directly_issued_by(cas[org])
        except (InvalidSignature, ValueError, TypeError):
            continue
        return org
    raise CertificateError(
        f"certificate {cert.subject.rfc4514_string()} names the CA of "
        f"{', '.join(repr(o) for o in candidates)} as issuer, but its signature "
        "does not verify with that CA"
    )
