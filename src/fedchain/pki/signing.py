"""ECDSA P-256 / SHA-256 signatures in the form Hyperledger Fabric accepts.

Fabric (and fedchain's embedded ledger) only accept *low-S* signatures: for an ECDSA signature
``(r, s)``, ``(r, n - s)`` is equally valid, so a signer could produce two different byte strings
for one message. Normalising to ``s <= n/2`` makes signatures non-malleable. :func:`sign` always
emits low-S, strict-DER signatures and :func:`verify_signature` refuses anything else.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from fedchain.errors import PKIError, SignatureError

__all__ = ["P256_ORDER", "is_low_s", "sign", "verify_signature"]

#: Order ``n`` of the NIST P-256 (secp256r1) group.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER = P256_ORDER // 2


def _require_p256(curve: ec.EllipticCurve) -> None:
    """Refuse keys on other curves: the low-S rule and Fabric's MSP both assume P-256."""
    if not isinstance(curve, ec.SECP256R1):
        raise PKIError(f"only ECDSA P-256 keys are supported, got curve {curve.name}")


def is_low_s(signature: bytes) -> bool:
    """Whether a DER ECDSA P-256 signature has ``s <= n/2`` (raises on malformed DER)."""
    _, s = _decode(signature)
    return s <= _HALF_ORDER


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """Sign ``data`` (hashed with SHA-256) and return a low-S DER signature."""
    _require_p256(key.curve)
    der = key.sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    if s > _HALF_ORDER:
        s = P256_ORDER - s
    return encode_dss_signature(r, s)


def _decode(signature: bytes) -> tuple[int, int]:
    """Decode strict DER ``(r, s)``; non-canonical encodings are refused (malleability)."""
    try:
        r, s = decode_dss_signature(signature)
    except ValueError as exc:
        raise SignatureError("signature is not a valid DER ECDSA signature") from exc
    if encode_dss_signature(r, s) != signature:
        raise SignatureError("signature is not canonical DER")
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        raise SignatureError("signature values are out of range for P-256")
    return r, s


def verify_signature(
    public_key_or_cert: ec.EllipticCurvePublicKey | x509.Certificate,
    data: bytes,
    signature: bytes,
) -> None:
    """Check a low-S DER ECDSA P-256/SHA-256 signature over ``data``.

    Raises :class:`~fedchain.errors.SignatureError` (a ``CertificateError``) when the signature
    is malformed, high-S, or does not verify; returns ``None`` when it is good.
    """
    if isinstance(public_key_or_cert, x509.Certificate):
        public_key = public_key_or_cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise SignatureError("certificate does not hold an EC public key")
    else:
        public_key = public_key_or_cert
    _require_p256(public_key.curve)
    _, s = _decode(signature)
    if s > _HALF_ORDER:
        raise SignatureError("signature is high-S (s > n/2); only low-S signatures are accepted")
    try:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify") from exc
