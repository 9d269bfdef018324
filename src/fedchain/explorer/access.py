"""Who may look: loopback without TLS, or mTLS with the consortium's TLS identities.

Bound to a loopback address the explorer serves plain HTTP to this machine only. Anywhere
else it serves HTTPS and requires a client certificate from a consortium TLS CA, the same
certificates the data plane uses (:mod:`fedchain.transport.tls`); the page names the
organization and member it belongs to.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedchain.errors import CertificateError, ConfigError
from fedchain.pki import Consortium, Identity
from fedchain.pki.certs import subject_attr

__all__ = ["is_loopback", "server_context", "viewer_of"]


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_context(identity: Identity, consortium: Consortium) -> ssl.SSLContext:
    """TLS server context: our TLS certificate; a client certificate from a member TLS CA."""
    tls = identity.tls_identity()
    try:
        usage = tls.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usage:
        raise ConfigError(
            f"the TLS certificate of {identity.org}/{identity.name} cannot serve HTTPS (no "
            "serverAuth): give --identity of a listening member (e.g. the aggregator's)"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=consortium.tls_ca_bundle_pem().decode())
    # ssl loads a key only from a file: a private folder that lives for this call only.
    with tempfile.TemporaryDirectory(prefix="fedchain-explorer-") as folder:
        cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert.write_bytes(tls.cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(tls.key_pem())
        context.load_cert_chain(cert, key)
    return context


def viewer_of(der: bytes | None, consortium: Consortium) -> str:
    """``org/name`` of a verified client certificate (CertificateError if not a member's)."""
    if not der:
        raise CertificateError("no client certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateError(f"unreadable client certificate: {exc}") from exc
    org = consortium.tls_org_of(cert)
    names = subject_attr(cert, NameOID.COMMON_NAME)
    return f"{org}/{names[0] if names else '?'}"
