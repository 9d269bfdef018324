"""Why an mTLS connection to the aggregator fails: a refused certificate, or a server not there.

gRPC reports both as ``UNAVAILABLE``. When the *server* refuses our certificate (an unknown CA,
a signing certificate used for TLS), TLS 1.3 has already finished the handshake on our side, so
gRPC says only "Socket closed", which is also what a port-forwarding proxy with no server
behind it says. Retrying a refused certificate forever hides a configuration error, and giving
up on a proxy would stop an organization that merely started first, so :func:`diagnose` asks
the server once more itself, with Python's TLS and the same certificate and trust:

* the handshake fails on our side (the server's certificate does not chain to the aggregator
  organization's TLS CA, or names another host): refused by us;
* the handshake completes but the server closes the connection before its HTTP/2 settings,
  twice in a row: refused by the server (a gRPC server that accepts us sends its settings first);
* the server answers our TLS greeting with something else (an HTTP server, say), twice in a
  row: not the aggregator's data plane;
* anything else (no connection, a connection closed during the handshake, an answer): not a
  refusal, retrying may help.

The key reaches OpenSSL through an anonymous in-memory file (``memfd``, Linux), never a file
on disk; where that does not exist the diagnosis is skipped and the caller keeps retrying.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from fedchain.pki import Consortium, Identity
from fedchain.transport.tls import split_address

__all__ = ["diagnose"]

# The HTTP/2 client preface and an empty SETTINGS frame: what a gRPC server waits for.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
# TLS alerts (as OpenSSL names them) by which a server that says why refuses a certificate.
_CERT_ALERTS = ("CERTIFICATE", "UNKNOWN_CA", "ACCESS_DENIED")
# What OpenSSL says when the answer to our ClientHello is not TLS (an HTTP server, say).
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL",
                      "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"})  # fmt: skip
_NOT_TLS_SAYS = "the server at this address does not answer in TLS"
_OURS = "the server's TLS certificate is not the aggregator's"
_THEIRS = "the aggregator refused this organization's TLS certificate"
_HINT = ": it must come from a TLS CA of the consortium the aggregator runs with"


def diagnose(
    address: str,
    identity: Identity,
    consortium: Consortium,
    *,
    server_name: str | None = None,
    timeout: float = 5.0,
) -> str | None:
    """Why the aggregator at ``address`` and we refuse each other, or None if they do not
    (or it cannot be told: the server is down, busy, or this platform has no ``memfd``)."""
    if not hasattr(os, "memfd_create"):
        return None
    try:
        context = _context(identity, consortium)
    except (ssl.SSLError, OSError):
        return None
    aggregator = consortium.aggregator
    first = _attempt(context, address, server_name, timeout, aggregator)
    if first is None or first.startswith(_OURS):
        return first
    return _attempt(context, address, server_name, timeout, aggregator)  # confirm it once more


def _context(identity: Identity, consortium: Consortium) -> ssl.SSLContext:
    """A client TLS context as the data plane's: our TLS certificate, the aggregator's CA."""
    tls = identity.tls_identity()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=consortium.tls_ca_pem(consortium.aggregator).decode())
    with _memfile(tls.cert_pem) as cert, _memfile(tls.key_pem()) as key:
        context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    return context


@contextmanager
def _memfile(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open that holds ``data`` in memory only, for the block."""
    fd = os.memfd_create("fedchain-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _attempt(
    context: ssl.SSLContext, address: str, server_name: str | None, timeout: float, aggregator: str
) -> str | None:
    host, port = split_address(address)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None  # not there (yet): not a refusal
    with raw:
        try:
            with context.wrap_socket(raw, server_hostname=server_name or host) as tls:
                tls.sendall(_H2_PREFACE)
                answer = tls.recv(9)
        except ssl.SSLCertVerificationError as exc:
            return (
                f"{_OURS} ({exc.verify_message}): it must be a server certificate from the "
                f"TLS CA of {aggregator}, the consortium's aggregator, for this address"
            )
        except ssl.SSLError as exc:
            reason = str(exc.reason or "")
            if "ALERT" in reason and any(word in reason for word in _CERT_ALERTS):
                return f"{_THEIRS} ({reason}){_HINT}"
            if reason in _NOT_TLS:
                return f"{_NOT_TLS_SAYS} ({reason}): is this the aggregator's data-plane address?"
            return None  # closed during the handshake: a proxy with nobody behind it
        except OSError:
            return None
    if answer:
        return None  # it speaks HTTP/2 to us: whatever failed was not the certificates
    return f"{_THEIRS} (it closed the connection right after the TLS handshake){_HINT}"
