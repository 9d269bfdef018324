"""Organization CAs and the identities they issue (pure functions, no files).

Each organization has one CA (ECDSA P-256). It signs every certificate of that organization:
the identities that sign ledger records *and* the TLS certificates of the mTLS data plane (one
CA per org for both, so an org's ``msp/cacerts`` and ``msp/tlscacerts`` hold the same
certificate). Identity subjects are ``CN=<name>, O=<org>, OU=<role>`` so they work as Fabric
NodeOU identities; a ``server`` identity also carries ``OU=client`` because Fabric accepts only
identities with exactly one of its node OUs (client, peer, admin, orderer) and the aggregator
signs ledger transactions as a client.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedchain.errors import PKIError
from fedchain.hashing import sha256_hex
from fedchain.pki import signing

__all__ = [
    "ROLES",
    "Identity",
    "Role",
    "create_ca",
    "fingerprint",
    "issue_identity",
    "role_of",
    "server_sans",
    "subject_attr",
    "validate_id",
]

Role = Literal["admin", "client", "server", "peer", "orderer"]
ROLES: tuple[str, ...] = get_args(Role)

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Certificates start this much before ``now`` to tolerate clock skew between hosts.
CLOCK_SKEW = timedelta(minutes=5)


def validate_id(value: str, what: str = "organization id") -> str:
    """Return ``value`` if it is a valid org/identity id (also a valid Fabric MSP id)."""
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        raise PKIError(
            f"invalid {what} {value!r}: use 1-64 characters from A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )
    return value


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise PKIError("'now' must be a timezone-aware datetime (e.g. datetime.now(UTC))")


def fingerprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER encoding."""
    return sha256_hex(cert.public_bytes(serialization.Encoding.DER))


def subject_attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    """All values of one subject attribute, as text."""
    return [
        a.value if isinstance(a.value, str) else a.value.decode()
        for a in cert.subject.get_attributes_for_oid(oid)
    ]


def role_of(cert: x509.Certificate) -> str:
    """The fedchain role of a certificate, from its subject OU(s)."""
    ous = [ou for ou in subject_attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) if ou in ROLES]
    if "server" in ous:
        return "server"
    if len(ous) != 1:
        raise PKIError(f"certificate {cert.subject.rfc4514_string()} has no single fedchain role")
    return ous[0]


@dataclass(frozen=True)
class Identity:
    """An organization member: its certificate and, when we hold it, its private key."""

    org: str
    name: str
    role: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None

    @property
    def cert_pem(self) -> bytes:
        """The certificate in PEM form (what Fabric puts in a SerializedIdentity)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the certificate DER."""
        return fingerprint(self.cert)

    def _require_key(self) -> ec.EllipticCurvePrivateKey:
        if self.key is None:
            raise PKIError(f"identity {self.org}/{self.name} has no private key loaded")
        return self.key

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with ECDSA P-256/SHA-256; low-S DER, as Fabric requires."""
        return signing.sign(self._require_key(), data)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS8 PEM (for gRPC channel credentials)."""
        return self._require_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(*attrs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(o, v)]) for o, v in attrs])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """digitalSignature for everyone; certificate and CRL signing for CAs only."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def create_ca(
    org: str, *, now: datetime, valid_days: int = 3650
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Create a self-signed P-256 CA for ``org`` (subject ``CN=ca.<org>, O=<org>``)."""
    validate_id(org)
    _require_aware(now)
    if valid_days < 1:
        raise PKIError("valid_days must be at least 1")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name((NameOID.COMMON_NAME, f"ca.{org}"), (NameOID.ORGANIZATION_NAME, org))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def server_sans(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    """``localhost``, ``127.0.0.1`` and ``hosts`` (IP literals become IP SANs), deduplicated."""
    entries: list[x509.GeneralName] = []
    for host in ("localhost", "127.0.0.1", *hosts):
        host = host.strip()
        if not host or any(c.isspace() for c in host) or "/" in host:
            raise PKIError(f"invalid host name {host!r} for a server certificate")
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            entry = x509.DNSName(host)
        if entry not in entries:
            entries.append(entry)
    return x509.SubjectAlternativeName(entries)


def _check_issue(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, org: str, name: str, role: str
) -> None:
    validate_id(org)
    validate_id(name, "identity name")
    if role not in ROLES:
        raise PKIError(f"invalid role {role!r}: expected one of {', '.join(ROLES)}")
    if subject_attr(ca_cert, NameOID.ORGANIZATION_NAME) != [org]:
        raise PKIError(f"CA {ca_cert.subject.rfc4514_string()} does not belong to org {org!r}")
    if ca_key.public_key() != ca_cert.public_key():
        raise PKIError(f"the CA key of {org!r} does not match its CA certificate")


def _leaf_subject(org: str, name: str, role: str) -> x509.Name:
    """``CN=name, O=org, OU=role`` (+ ``OU=client`` for servers: Fabric needs one node OU)."""
    ous = [(NameOID.ORGANIZATIONAL_UNIT_NAME, role)]
    if role == "server":
        ous.append((NameOID.ORGANIZATIONAL_UNIT_NAME, "client"))
    return _name((NameOID.COMMON_NAME, name), (NameOID.ORGANIZATION_NAME, org), *ous)


def issue_identity(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    org: str,
    name: str,
    role: Role,
    hosts: Sequence[str] = (),
    now: datetime,
    valid_days: int = 825,
) -> Identity:
    """Issue a P-256 identity of ``org`` signed by its CA.

    Subject ``CN=name, O=org, OU=role``; key usage digitalSignature; EKU clientAuth, plus
    serverAuth and SANs (localhost, 127.0.0.1, ``hosts``) for role ``server``. The validity is
    clipped to the CA's own.
    """
    _check_issue(ca_cert, ca_key, org, name, role)
    _require_aware(now)
    if valid_days < 1:
        raise PKIError("valid_days must be at least 1")
    not_before = max(now - CLOCK_SKEW, ca_cert.not_valid_before_utc)
    not_after = min(now + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    if not_before >= not_after:
        raise PKIError(f"the requested validity falls outside that of the CA of {org!r}")
    key = ec.generate_private_key(ec.SECP256R1())
    ekus = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role == "server":
        ekus.append(ExtendedKeyUsageOID.SERVER_AUTH)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_leaf_subject(org, name, role))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if role == "server":
        builder = builder.add_extension(server_sans(hosts), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Identity(org=org, name=name, role=role, cert=cert, key=key)
