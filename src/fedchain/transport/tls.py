"""mTLS credentials, channel options and peer identity for the data plane.

Both sides use their TLS certificate (``tls/`` beside the MSP), never the MSP signing
certificate, and trust only the organizations' **TLS CAs**: a signing certificate (no EKU, for
Fabric) chains to no CA the data plane trusts. Trust is asymmetric on purpose:

* the server trusts every consortium TLS CA for client certificates and requires one
  (``require_client_auth=True``): a certificate from any other CA fails the handshake;
* a client trusts **only the aggregator organization's TLS CA** for the server certificate, so
  another member organization cannot pose as the aggregator even with a valid server
  certificate of its own, and the TLS stack refuses a client certificate (EKU clientAuth only)
  as a server's.

The caller's organization is read from its verified certificate
(``auth_context()["x509_pem_cert"]``) and decided by :meth:`Consortium.tls_org_of`.

Development mode (``insecure_dev``) is plaintext gRPC and trusts the organization a caller
*claims*. It exists for debugging on one machine, so :func:`require_loopback` refuses any
address that is not loopback (127.0.0.0/8, ::1, localhost) before anything is bound or dialled.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import grpc
from cryptography import x509

from fedchain.errors import CertificateError, ConfigError, PeerAuthError
from fedchain.pki import Consortium, Identity

__all__ = [
    "channel_credentials",
    "channel_options",
    "peer_org",
    "require_loopback",
    "server_credentials",
    "server_options",
    "split_address",
]

# Slack above the chunk size for gRPC framing and the JSON header.
_MESSAGE_SLACK = 64 * 1024
_PEER_CHUNK_MAX = 4 << 20
# Long rounds leave connections idle for minutes: keep them alive, but never ping-flood.
_KEEPALIVE_MS = 60_000
_KEEPALIVE_TIMEOUT_MS = 20_000
_RECONNECT_MAX_MS = 2_000


def server_credentials(identity: Identity, consortium: Consortium) -> Any:
    """Server credentials: our TLS certificate; client certificates from any member TLS CA."""
    tls = identity.tls_identity()
    return grpc.ssl_server_credentials(
        [(tls.key_pem(), tls.cert_pem)],
        root_certificates=consortium.tls_ca_bundle_pem(),
        require_client_auth=True,
    )


def channel_credentials(identity: Identity, consortium: Consortium) -> Any:
    """Client credentials: our TLS certificate; the server must chain to the aggregator's."""
    tls = identity.tls_identity()
    return grpc.ssl_channel_credentials(
        root_certificates=consortium.tls_ca_pem(consortium.aggregator),
        private_key=tls.key_pem(),
        certificate_chain=tls.cert_pem,
    )


def _common_options(chunk_size: int) -> list[tuple[str, int]]:
    # We send chunks of our own size; we accept a peer configured with up to 4 MiB chunks.
    return [
        ("grpc.max_send_message_length", chunk_size + _MESSAGE_SLACK),
        ("grpc.max_receive_message_length", max(chunk_size, _PEER_CHUNK_MAX) + _MESSAGE_SLACK),
        ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_options(chunk_size: int) -> list[tuple[str, int]]:
    """Server channel arguments: message limits from the chunk size, tolerant keepalive."""
    return [
        *_common_options(chunk_size),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", _KEEPALIVE_MS // 2),
        ("grpc.http2.max_ping_strikes", 3),
    ]


def channel_options(chunk_size: int, server_name: str | None = None) -> list[tuple[str, Any]]:
    """Client channel arguments; ``server_name`` overrides the TLS name checked."""
    options: list[tuple[str, Any]] = list(_common_options(chunk_size))
    # Reconnect soon after an aggregator restart (gRPC's default backoff grows to 120 s).
    options.append(("grpc.max_reconnect_backoff_ms", _RECONNECT_MAX_MS))
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ConfigError if malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def require_loopback(address: str) -> None:
    """Refuse (ConfigError) any address that is not loopback: for plaintext development only."""
    host, _port = split_address(address)
    if host.lower() == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"insecure_dev (plaintext, unauthenticated) refuses non-loopback address {address!r}"
        )


def peer_org(context: Any, consortium: Consortium) -> str:
    """The organization of the mTLS peer of ``context`` (PeerAuthError / CertificateError)."""
    pems = context.auth_context().get("x509_pem_cert") or []
    if len(pems) != 1:
        raise PeerAuthError("the peer presented no client certificate")
    try:
        cert = x509.load_pem_x509_certificate(pems[0])
    except ValueError as exc:
        raise CertificateError(f"the peer's certificate cannot be parsed: {exc}") from exc
    return consortium.tls_org_of(cert)
