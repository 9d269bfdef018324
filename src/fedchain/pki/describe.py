"""A JSON-ready description of a consortium folder (for ``fedchain pki show`` and scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedchain.pki.store import AGGREGATOR_NAME, list_identities, load_consortium

__all__ = ["describe_consortium"]


def describe_consortium(pki_dir: Path) -> dict[str, Any]:
    """Organizations (CA fingerprints and expiry) and identities (role, fingerprint, expiry).

    Only public files are read, so no key password is needed. The aggregator organization and
    its server identity carry ``"aggregator": true``.
    """
    cons = load_consortium(pki_dir)
    fingerprints, tls_fingerprints = cons.fingerprints(), cons.tls_fingerprints()
    orgs = [
        {
            "id": org,
            "ca_sha256": fingerprints[org],
            "tlsca_sha256": tls_fingerprints[org],
            "ca_not_valid_after": cons.cas[org].not_valid_after_utc.isoformat(),
            "aggregator": org == cons.aggregator,
        }
        for org in cons.orgs
    ]
    identities = [
        {
            "org": ident.org,
            "name": ident.name,
            "role": ident.role,
            "fingerprint": ident.fingerprint,
            "not_valid_after": ident.cert.not_valid_after_utc.isoformat(),
            "aggregator": ident.org == cons.aggregator
            and ident.name == AGGREGATOR_NAME
            and ident.role == "server",
        }
        for ident in list_identities(pki_dir, cons)
    ]
    return {
        "name": cons.name,
        "aggregator": cons.aggregator,
        "path": str(pki_dir.absolute()),
        "orgs": orgs,
        "identities": identities,
    }
