"""The consortium: which organizations take part, their CAs, and who aggregates.

:meth:`Consortium.org_of` is the one place that decides which organization a presented
certificate belongs to; the transport (mTLS peers) and the ledger (record signers) both use it.
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
    """The organizations of one federation, each trusted through its own CA certificate."""

    name: str
    aggregator: str
    cas: Mapping[str, x509.Certificate] = field(repr=False)

    def __post_init__(self) -> None:
        validate_id(self.name, "consortium name")
        if not self.cas:
            raise PKIError("a consortium needs at least one organization")
        for org, ca in self.cas.items():
            validate_id(org)
            if subject_attr(ca, NameOID.ORGANIZATION_NAME) != [org]:
                raise PKIError(f"CA certificate of {org!r} does not name O={org}")
        if self.aggregator not in self.cas:
            raise PKIError(f"aggregator {self.aggregator!r} is not one of the organizations")
        frozen = MappingProxyType({org: self.cas[org] for org in sorted(self.cas)})
        object.__setattr__(self, "cas", frozen)

    @property
    def orgs(self) -> tuple[str, ...]:
        """Organization ids, sorted."""
        return tuple(sorted(self.cas))

    def fingerprints(self) -> dict[str, str]:
        """Organization id -> SHA-256 hex of its CA certificate."""
        return {org: fingerprint(ca) for org, ca in self.cas.items()}

    def ca_bundle_pem(self) -> bytes:
        """All CA certificates as concatenated PEM, sorted by org (gRPC root certificates)."""
        return b"".join(self.cas[org].public_bytes(serialization.Encoding.PEM) for org in self.orgs)

    def org_of(self, cert: x509.Certificate, *, now: datetime | None = None) -> str:
        """Return the organization that issued ``cert``, after checking it fully.

        Checks: the issuer is one org's CA subject, that CA's signature is valid, the
        certificate (and its CA) are within validity at ``now``, it is not itself a CA, and
        its subject ``O`` names the same org. Raises :class:`CertificateError` otherwise.
        """
        when = datetime.now(UTC) if now is None else now
        if when.tzinfo is None:
            raise PKIError("'now' must be a timezone-aware datetime")
        subject = cert.subject.rfc4514_string()
        candidates = [org for org, ca in self.cas.items() if ca.subject == cert.issuer]
        if not candidates:
            raise CertificateError(
                f"certificate {subject} was issued by {cert.issuer.rfc4514_string()}, "
                f"which is not a CA of consortium {self.name!r}"
            )
        org = self._verified_issuer(cert, candidates)
        if _is_ca(cert):
            raise CertificateError(f"certificate {subject} is a CA, not an identity")
        _check_validity(self.cas[org], when, f"CA certificate of {org!r}")
        _check_validity(cert, when, f"certificate {subject}")
        claimed = subject_attr(cert, NameOID.ORGANIZATION_NAME)
        if claimed != [org]:
            raise CertificateError(
                f"certificate {subject} claims organization {claimed} but was issued by "
                f"the CA of {org!r}"
            )
        return org

    def _verified_issuer(self, cert: x509.Certificate, candidates: list[str]) -> str:
        """The first candidate org whose CA signature over ``cert`` verifies."""
        for org in candidates:
            try:
                cert.verify_directly_issued_by(self.cas[org])
            except (InvalidSignature, ValueError, TypeError):
                continue
            return org
        raise CertificateError(
            f"certificate {cert.subject.rfc4514_string()} names the CA of "
            f"{', '.join(repr(o) for o in candidates)} as issuer, but its signature "
            "does not verify with that CA"
        )
