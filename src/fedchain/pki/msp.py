"""Fabric-MSP-style folders: writing and reading one identity's certificate and key.

An MSP folder holds ``cacerts/ca.pem``, ``tlscacerts/ca.pem`` (the same org CA: one CA signs
both signing and TLS certificates), ``config.yaml`` (Fabric NodeOUs) and, for an identity,
``signcerts/cert.pem`` and ``keystore/key.pem``. Files are created exclusively (never
overwritten); private keys get mode 0600 from the moment they exist.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedchain.errors import IdentityNotFoundError, KeyPasswordError, PKIError
from fedchain.pki.certs import Identity, role_of, subject_attr

__all__ = [
    "NODE_OUS_YAML",
    "find_msp",
    "identity_from_cert",
    "load_cert",
    "load_identity",
    "load_key",
    "serialize_key",
    "write_file",
    "write_msp",
]

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


def write_msp(
    msp: Path,
    ca_cert: x509.Certificate,
    identity: Identity | None = None,
    *,
    password: bytes | None = None,
) -> None:
    """Write an org MSP (CA only) or an identity's MSP (CA, cert and key) into ``msp``."""
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    write_file(msp / "cacerts" / "ca.pem", ca_pem)
    write_file(msp / "tlscacerts" / "ca.pem", ca_pem)
    write_file(msp / "config.yaml", NODE_OUS_YAML)
    if identity is not None:
        if identity.key is None:
            raise PKIError(f"identity {identity.org}/{identity.name} has no key to write")
        write_file(msp / "signcerts" / "cert.pem", identity.cert_pem)
        write_file(
            msp / "keystore" / "key.pem", serialize_key(identity.key, password), private=True
        )


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
    cert = load_cert(_single(msp / "signcerts", "cert.pem"))
    key_path = _single(msp / "keystore", "key.pem")
    key = None
    if require_key or key_path.exists():
        key = load_key(key_path, password)
        if key.public_key() != cert.public_key():
            raise PKIError(f"the key in {key_path} does not match the certificate")
    return identity_from_cert(cert, key)


def identity_from_cert(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None
) -> Identity:
    """Build an :class:`Identity` whose org, name and role come from the subject O, CN, OU."""
    orgs = subject_attr(cert, NameOID.ORGANIZATION_NAME)
    names = subject_attr(cert, NameOID.COMMON_NAME)
    if len(orgs) != 1 or len(names) != 1:
        raise PKIError(f"certificate {cert.subject.rfc4514_string()} lacks a single O and CN")
    return Identity(org=orgs[0], name=names[0], role=role_of(cert), cert=cert, key=key)
