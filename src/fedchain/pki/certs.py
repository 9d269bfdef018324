"""Organization CAs and the certificates they issue (pure functions, no files).

Each organization has two CAs (ECDSA P-256), as in Fabric's own layout:

* the **signing CA** (``CN=ca.<org>``, Fabric's ``msp/cacerts``) issues the certificates that
  sign ledger records and Fabric transactions. They carry **no** extended key usage: Fabric
  validates MSP identities with Go's ``x509.Verify``, which refuses a certificate whose EKU
  lacks serverAuth, so an EKU of clientAuth alone breaks every Fabric node and client;
* the **TLS CA** (``CN=tlsca.<org>``, ``msp/tlscacerts``) issues the certificates of the mTLS
  data plane and of Fabric's TLS. They carry EKU clientAuth, plus serverAuth and SANs for the
  roles that listen (server, peer, orderer).

Keeping the two apart keeps what the data plane promises: a signing certificate (no EKU, so
valid for any purpose to a TLS stack) chains to no CA that TLS trusts, and a client's TLS
certificate (clientAuth only) cannot serve TLS. Subjects are ``CN=<name>, O=<org>,
OU=<role>`` so they work as Fabric NodeOU identities; a ``server`` identity also carries
``OU=client`` because Fabric accepts only identities with exactly one of its node OUs (client,
peer, admin, orderer) and the aggregator signs ledger transactions as a client.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    "CA",
    "CA_KINDS",
    "LISTENING_ROLES",
    "ROLES",
    "CAKind",
    "Identity",
    "Profile",
    "Role",
    "ca_kind",
    "create_ca",
    "fingerprint",
    "issue_identity",
    "issue_member",
    "role_of",
    "server_sans",
    "subject_attr",
    "validate_id",
]

Role = Literal["admin", "client", "server", "peer", "orderer"]
ROLES: tuple[str, ...] = get_args(Role)
#: ``ca`` signs MSP (ledger-signing) certificates; ``tlsca`` signs TLS certificates.
CAKind = Literal["ca", "tlsca"]
CA_KINDS: tuple[str, ...] = get_args(CAKind)
#: What a leaf certificate is for: ``sign`` (MSP signcert, no EKU) or ``tls``.
Profile = Literal["sign", "tls"]
#: Roles whose TLS certificate also serves (serverAuth and SANs).
LISTENING_ROLES = frozenset({"server", "peer", "orderer"})

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
    """An organization member: its certificate and, when we hold it, its private key.

    ``cert`` is the signing (MSP) certificate; ``tls``, when loaded, is the same member's TLS
    certificate and key for the mTLS data plane (see :meth:`tls_identity`).
    """

    org: str
    name: str
    role: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None
    tls: Identity | None = None

    def tls_identity(self) -> Identity:
        """The TLS certificate and key of this member (PKIError if none was loaded)."""
        if self.tls is None:
            raise PKIError(
                f"identity {self.org}/{self.name} has no TLS certificate (tls/ beside its msp/); "
                "re-issue the PKI with `fedchain pki init --force`"
            )
        return self.tls

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
    org: str, *, now: datetime, valid_days: int = 3650, kind: CAKind = "ca"
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Create a self-signed P-256 CA for ``org`` (subject ``CN=<kind>.<org>, O=<org>``)."""
    validate_id(org)
    _require_aware(now)
    if valid_days < 1:
        raise PKIError("valid_days must be at least 1")
    if kind not in CA_KINDS:
        raise PKIError(f"invalid CA kind {kind!r}: expected one of {', '.join(CA_KINDS)}")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name((NameOID.COMMON_NAME, f"{kind}.{org}"), (NameOID.ORGANIZATION_NAME, org))
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


def ca_kind(ca_cert: x509.Certificate) -> CAKind:
    """``tlsca`` for a TLS CA (``CN=tlsca.<org>``, as fedchain and cryptogen name them)."""
    names = subject_attr(ca_cert, NameOID.COMMON_NAME)
    return "tlsca" if names and names[0].startswith("tlsca.") else "ca"


def _check_issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    org: str,
    name: str,
    role: str,
    profile: str,
) -> None:
    validate_id(org)
    validate_id(name, "identity name")
    if role not in ROLES:
        raise PKIError(f"invalid role {role!r}: expected one of {', '.join(ROLES)}")
    if subject_attr(ca_cert, NameOID.ORGANIZATION_NAME) != [org]:
        raise PKIError(f"CA {ca_cert.subject.rfc4514_string()} does not belong to org {org!r}")
    if ca_key.public_key() != ca_cert.public_key():
        raise PKIError(f"the CA key of {org!r} does not match its CA certificate")
    if profile not in get_args(Profile):
        raise PKIError(f"invalid certificate profile {profile!r}: expected sign or tls")
    expected = "tlsca" if profile == "tls" else "ca"
    if ca_kind(ca_cert) != expected:
        raise PKIError(
            f"a {profile} certificate must be issued by the {expected} of {org!r}, "
            f"not by {ca_cert.subject.rfc4514_string()}"
        )


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
    profile: Profile = "sign",
) -> Identity:
    """Issue a P-256 certificate of ``org`` signed by ``ca_cert`` (the CA for ``profile``).

    Subject ``CN=name, O=org, OU=role``; key usage digitalSignature. Profile ``sign`` (an MSP
    signing certificate) has no EKU and no SANs, as Fabric requires. Profile ``tls`` has EKU
    clientAuth, plus serverAuth and SANs (localhost, 127.0.0.1, ``hosts``) for the roles that
    listen (server, peer, orderer). The validity is clipped to the CA's own.
    """
    _check_issue(ca_cert, ca_key, org, name, role, profile)
    _require_aware(now)
    if valid_days < 1:
        raise PKIError("valid_days must be at least 1")
    not_before = max(now - CLOCK_SKEW, ca_cert.not_valid_before_utc)
    not_after = min(now + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    if not_before >= not_after:
        raise PKIError(f"the requested validity falls outside that of the CA of {org!r}")
    sans = server_sans(hosts)  # validated for every profile, used by listening TLS certs
    listening = profile == "tls" and role in LISTENING_ROLES
    key = ec.generate_private_key(ec.SECP256R1())
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if profile == "tls":
        ekus = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if listening:
            ekus.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if listening:
        builder = builder.add_extension(sans, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Identity(org=org, name=name, role=role, cert=cert, key=key)


CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def issue_member(
    sign_ca: CA,
    tls_ca: CA,
    *,
    org: str,
    name: str,
    role: Role,
    hosts: Sequence[str] = (),
    now: datetime,
) -> Identity:
    """A member's signing certificate from ``sign_ca`` with its TLS certificate from ``tls_ca``."""
    signing = issue_identity(*sign_ca, org=org, name=name, role=role, hosts=hosts, now=now)
    tls = issue_identity(*tls_ca, org=org, name=name, role=role, hosts=hosts, now=now,
                         profile="tls")  # fmt: skip
    return replace(signing, tls=tls)
