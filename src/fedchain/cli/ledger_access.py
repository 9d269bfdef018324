"""Open the ledger a ``fedchain.toml`` names, for the read-only commands (audit, show)."""

from __future__ import annotations

from pathlib import Path

from fedchain.cli.options import DEFAULT_PKI
from fedchain.config import Settings
from fedchain.errors import ConfigError
from fedchain.ledger.base import Ledger
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.ledger.factory import open_ledger
from fedchain.pki import load_consortium, load_identity

__all__ = ["open_for_reading"]


def open_for_reading(settings: Settings, pki: Path | None = None) -> Ledger:
    """A handle that reads the configured ledger.

    The embedded file opens read-only with no identity. A ledger that is not a local file (a
    Fabric channel) is read as this organization: ``[organization] identity`` signs the queries,
    and the consortium (``pki``, else ``[organization] pki``) must be the channel's.
    """
    if settings.ledger.backend == "embedded":
        return EmbeddedLedger.open(settings.ledger.path)
    org = settings.organization
    if org is None or org.identity is None:
        raise ConfigError(
            f"reading a {settings.ledger.backend} ledger needs [organization] identity"
        )
    consortium = load_consortium(pki or org.pki or DEFAULT_PKI)
    return open_ledger(settings.ledger, load_identity(org.identity), consortium)
