"""Who signs Fabric requests: an MSP id, a certificate, and two plain callables.

As in the official fabric-gateway clients, the signer and the hash are functions: ``hash``
turns a message into a digest and ``signer`` turns a digest into a DER ECDSA signature. The
default pair is SHA-256 and an in-memory P-256 key producing **low-S** signatures (Fabric
refuses high-S ones); an HSM or a remote signing service is just another ``signer``.

Identities come from an MSP folder: the ones ``fedchain pki`` writes
(``<pki>/<org>/users/<name>/msp``) or those of ``cryptogen`` / Fabric CA
(``signcerts/*.pem`` and ``keystore/*_sk``; a keystore may hold several keys, the one matching
the certificate is used).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.msp import identities_pb2

from fedchain.errors import IdentityNotFoundError, PKIError
from fedchain.pki.certs import Identity
from fedchain.pki.msp import find_msp, load_cert, load_key
from fedchain.pki.signing import P256_ORDER

__all__ = [
    "ClientIdentity",
    "Hash",
    "Signer",
    "SigningIdentity",
    "from_pki_identity",
    "load_msp_identity",
    "private_key_signer",
    "sha256",
]

#: ``signer(digest) -> DER signature`` (low-S for Fabric).
Signer = Callable[[bytes], bytes]
#: ``hash(message) -> digest``.
Hash = Callable[[bytes], bytes]


def sha256(message: bytes) -> bytes:
    """The default hash: SHA-256, what Fabric's default MSP (ECDSA P-256) expects."""
    return hashlib.sha256(message).digest()


def private_key_signer(key: ec.EllipticCurvePrivateKey) -> Signer:
    """A signer over SHA-256 digests with ``key`` (P-256), normalised to low-S DER."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise PKIError(f"Fabric signing needs an ECDSA P-256 key, got curve {key.curve.name}")

    def sign(digest: bytes) -> bytes:
        der = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        r, s = decode_dss_signature(der)
        return encode_dss_signature(r, min(s, P256_ORDER - s))

    return sign


@dataclass(frozen=True)
class ClientIdentity:
    """A Fabric client identity: the MSP id and the X.509 certificate (PEM) it presents."""

    msp_id: str
    cert_pem: bytes

    @property
    def creator(self) -> bytes:
        """The serialized ``msp.SerializedIdentity{mspid, id_bytes=PEM}`` sent with requests."""
        identity = identities_pb2.SerializedIdentity(mspid=self.msp_id, id_bytes=self.cert_pem)
        data: bytes = identity.SerializeToString()
        return data


@dataclass(frozen=True)
class SigningIdentity:
    """An identity with its signer and hash: what every request is signed with."""

    identity: ClientIdentity
    signer: Signer = field(repr=False)
    hash: Hash = field(default=sha256, repr=False)

    @property
    def creator(self) -> bytes:
        return self.identity.creator

    def sign(self, message: bytes) -> bytes:
        """``signer(hash(message))``: the signature Fabric checks over ``message``."""
        return self.signer(self.hash(message))


def from_pki_identity(
    identity: Identity, msp_id: str | None = None
) -> tuple[ClientIdentity, Signer]:
    """A fedchain PKI identity as a Fabric identity and signer; the MSP id defaults to its org."""
    if identity.key is None:
        raise PKIError(f"identity {identity.org}/{identity.name} has no private key loaded")
    client = ClientIdentity(msp_id=msp_id or identity.org, cert_pem=identity.cert_pem)
    return client, private_key_signer(identity.key)


def _only_pem(folder: Path) -> Path:
    files = sorted(p for p in folder.glob("*.pem") if p.is_file()) if folder.is_dir() else []
    if len(files) != 1:
        raise IdentityNotFoundError(
            f"expected one certificate (*.pem) in {folder}, found {len(files)}"
        )
    return files[0]


def load_msp_identity(
    path: Path, msp_id: str, *, password: bytes | None = None
) -> tuple[ClientIdentity, Signer]:
    """Load the identity in an MSP folder (or its parent) as ``msp_id``.

    Works for fedchain, cryptogen and Fabric CA layouts alike: it reads the single certificate
    in ``signcerts/`` and the key in ``keystore/`` that matches it, without assuming anything
    about the certificate's subject.
    """
    msp = find_msp(path)
    cert = load_cert(_only_pem(msp / "signcerts"))
    keystore = msp / "keystore"
    candidates = sorted(p for p in keystore.iterdir() if p.is_file()) if keystore.is_dir() else []
    for candidate in candidates:
        key = load_key(candidate, password)
        if key.public_key() == cert.public_key():
            pem = cert.public_bytes(serialization.Encoding.PEM)
            return ClientIdentity(msp_id=msp_id, cert_pem=pem), private_key_signer(key)
    raise IdentityNotFoundError(
        f"no key in {keystore} matches the certificate in {msp / 'signcerts'}"
    )
