"""Fabric-MSP-style folders: writing and reading one identity's certificates and keys.

An MSP folder holds ``cacerts/ca.pem`` (the org's signing CA), ``tlscacerts/ca.pem`` (its TLS
CA), ``config.yaml`` (Fabric NodeOUs) and, for an identity, ``signcerts/cert.pem`` and
``keystore/key.pem``. Beside an identity's ``msp/`` its ``tls/`` folder holds, with Fabric's
file names, ``ca.crt`` (the TLS CA) and ``client.crt``/``client.key`` (or ``server.crt``/
``server.key`` for the roles that listen). Files are created exclusively (never overwritten);
private keys get mode 0600 from the moment they exist.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedchain.errors import IdentityNotFoundError, KeyPasswordError, PKIError
from fedchain.pki.certs import LISTENING_ROLES, Identity, role_of, subject_attr

__all__ = [
    "NODE_OUS_YAML",
    "REISSUE_HINT",
    "find_msp",
    "identity_from_cert",
    "load_cert",
    "load_identity",
    "load_key",
    "serialize_key",
    "tls_stem",
    "write_file",
    "write_msp",
    "write_tls",
]

#: What an older fedchain (one CA per org, EKU clientAuth on signing certificates) left behind.
REISSUE_HINT = (
    "it was made by an older fedchain whose certificates Hyperledger Fabric refuses; "
    "re-issue the PKI with `fedchain pki init --force` (and `fedchain pki fabric-nodes`)"
)

NODE_OUS_YAML = b"""\
NodeOUs:
  Enable: true
  ClientOUIdentifier:
    Certificate: cacerts/ca.pem
    OrganizationalUnitIdentifier: client
  PeerOUIdentifier:
    Certificate: cacerts/ca.pem
    OrganizationalUnitIdentifier: peer
  AdminOUIdentifier:
    Certificate: cacerts/ca.pem
    OrganizationalUnitIdentifier: admin
  OrdererOUIdentifier:
    Certificate: cacerts/ca.pem
    OrganizationalUnitIdentifier: orderer
"""


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Create ``path`` exclusively (fails if it exists); mode 0600 if ``private`` else 0644."""
    mode = 0o600 if private else 0o644
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o755)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise PKIError(f"refusing to overwrite existing file {path}") from exc
    except OSError as exc:
        raise PKIError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), mode)  # the umask must not widen or narrow what we chose
        fh.write(data)


def serialize_key(key: ec.EllipticCurvePrivateKey, password: bytes | None) -> bytes:
    """PKCS8 PEM, encrypted with the best available scheme when a password is given."""
    if password is not None and not password:
        raise KeyPasswordError("an empty key password is not allowed")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_msp(
    msp: Path,
    ca_cert: x509.Certificate,
    identity: Identity | None = None,
    *,
    tls_ca_cert: x509.Certificate,
    password: bytes | None = None,
) -> None:
    """Write an org MSP (CAs only) or an identity's MSP (CAs, signing cert and key)."""
    write_file(msp / "cacerts" / "ca.pem", _pem(ca_cert))
    write_file(msp / "tlscacerts" / "ca.pem", _pem(tls_ca_cert))
    write_file(msp / "config.yaml", NODE_OUS_YAML)
    if identity is not None:
        if identity.key is None:
            raise PKIError(f"identity {identity.org}/{identity.name} has no key to write")
        write_file(msp / "signcerts" / "cert.pem", identity.cert_pem)
        write_file(
            msp / "keystore" / "key.pem", serialize_key(identity.key, password), private=True
        )


def tls_stem(role: str) -> str:
    """Fabric's file stem in ``tls/``: ``server`` for the roles that listen, else ``client``."""
    return "server" if role in LISTENING_ROLES else "client"


def write_tls(
    folder: Path, tls_ca_cert: x509.Certificate, tls: Identity, *, password: bytes | None = None
) -> None:
    """``ca.crt`` plus ``server.crt/key`` or ``client.crt/key`` (Fabric's names) in ``folder``."""
    if tls.key is None:
        raise PKIError(f"TLS identity {tls.org}/{tls.name} has no key to write")
    stem = tls_stem(tls.role)
    write_file(folder / "ca.crt", _pem(tls_ca_cert))
    write_file(folder / f"{stem}.crt", tls.cert_pem)
    write_file(folder / f"{stem}.key", serialize_key(tls.key, password), private=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise IdentityNotFoundError(f"missing file {path}") from exc
    except OSError as exc:
        raise PKIError(f"cannot read {path}: {exc.strerror}") from exc


def load_cert(path: Path) -> x509.Certificate:
    """Read one PEM certificate; a missing file raises IdentityNotFoundError."""
    try:
        return x509.load_pem_x509_certificate(_read(path))
    except ValueError as exc:
        raise PKIError(f"{path} is not a PEM certificate") from exc


def load_key(path: Path, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Read a PEM private key, translating cryptography's password errors."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:  # cryptography: password given/missing vs. (un)encrypted key
        if password is None:
            raise KeyPasswordError(f"{path} is encrypted and no password was given") from exc
        raise KeyPasswordError(f"{path} is not encrypted but a password was given") from exc
    except ValueError as exc:
        if password is not None and b"ENCRYPTED" in data:
            raise KeyPasswordError(f"wrong password for {path}") from exc
        raise PKIError(f"{path} is not a readable PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{path} does not hold an EC private key")
    return key


def find_msp(path: Path) -> Path:
    """The MSP folder of an identity given the identity folder or the MSP folder itself."""
    if (path / "msp").is_dir():
        return path / "msp"
    if (path / "signcerts").is_dir() or path.name == "msp":
        return path
    raise IdentityNotFoundError(f"no identity at {path} (expected {path / 'msp'})")


def _single(folder: Path, preferred: str) -> Path:
    """``folder/preferred`` or, for cryptogen-made MSPs, the only file in ``folder``."""
    if (folder / preferred).exists() or not folder.is_dir():
        return folder / preferred
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return files[0] if len(files) == 1 else folder / preferred


def load_identity(
    path: Path, *, password: bytes | None = None, require_key: bool = True
) -> Identity:
    """Load an identity from its folder (or its ``msp/`` subfolder).

    Org, name and role come from the certificate subject (O, CN, OU). With
    ``require_key=False`` a missing keystore yields an identity with ``key=None``.
    """
    msp = find_msp(path)
    cert_path = _single(msp / "signcerts", "cert.pem")
    cert = load_cert(cert_path)
    _refuse_old_signcert(cert_path, cert)
    key_path = _single(msp / "keystore", "key.pem")
    key = None
    if require_key or key_path.exists():
        key = _load_matching_key(key_path, cert, password)
    signing = identity_from_cert(cert, key)
    tls = _load_tls(msp.parent / "tls", signing, password) if key is not None else None
    return Identity(signing.org, signing.name, signing.role, cert, key, tls)


def _load_matching_key(
    key_path: Path, cert: x509.Certificate, password: bytes | None
) -> ec.EllipticCurvePrivateKey:
    key = load_key(key_path, password)
    if key.public_key() != cert.public_key():
        raise PKIError(f"the key in {key_path} does not match the certificate")
    return key


def _refuse_old_signcert(path: Path, cert: x509.Certificate) -> None:
    """A signing certificate whose EKU lacks serverAuth (Fabric refuses it): say how to fix."""
    try:
        ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    usable = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if not usable.intersection(ekus):
        raise PKIError(f"{path} has extended key usage clientAuth only: {REISSUE_HINT}")


def _load_tls(folder: Path, signing: Identity, password: bytes | None) -> Identity | None:
    """The member's TLS certificate and key from ``tls/``, or None if there is no ``tls/``."""
    if not folder.is_dir():
        return None
    stem = tls_stem(signing.role)
    cert = load_cert(folder / f"{stem}.crt")
    key = _load_matching_key(folder / f"{stem}.key", cert, password)
    tls = identity_from_cert(cert, key)
    if (tls.org, tls.name) != (signing.org, signing.name):
        raise PKIError(
            f"{folder / f'{stem}.crt'} is for {tls.org}/{tls.name}, "
            f"not {signing.org}/{signing.name}"
        )
    return tls


def identity_from_cert(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None
) -> Identity:
    """Build an :class:`Identity` whose org, name and role come from the subject O, CN, OU."""
    orgs = subject_attr(cert, NameOID.ORGANIZATION_NAME)
    names = subject_attr(cert, NameOID.COMMON_NAME)
    if len(orgs) != 1 or len(names) != 1:
        raise PKIError(f"certificate {cert.subject.rfc4514_string()} lacks a single O and CN")
    return Identity(org=orgs[0], name=names[0], role=role_of(cert), cert=cert, key=key)
