"""Pick the ledger backend named by the configuration (``[ledger] backend = ...``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from fedchain.config import DEFAULT_PKI, LedgerSettings, Settings
from fedchain.errors import ConfigError, LedgerError, MissingExtra
from fedchain.ledger.base import Ledger
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.ledger.memory import MemoryLedger, MemoryStore
from fedchain.pki import Consortium, Identity, load_consortium, load_identity

__all__ = ["open_for_reading", "open_ledger", "require_fabric"]

_MEMORY: dict[tuple[str, str, str], MemoryStore] = {}
_MEMORY_LOCK = threading.Lock()


def open_ledger(
    settings: LedgerSettings,
    identity: Identity | None,
    consortium: Consortium,
    *,
    clock: Callable[[], float] = time.time,
) -> Ledger:
    """A handle writing as ``identity`` (``None``: read-only) on the configured ledger.

    * ``memory``: one in-process store per (consortium and its CAs, path), its consortium record
      written on first use; for tests and single-process experiments.
    * ``embedded``: the SQLite file at ``settings.path``, which must exist (LedgerNotFound
      otherwise; the aggregator creates it with ``EmbeddedLedger.create`` or
      ``fedchain ledger init``).
    * ``fabric``: the chaincode on a Hyperledger Fabric channel, through the Gateway of
      ``settings.fabric`` (see ``docs/fabric.md``); the aggregator writes the consortium record
      on first use, and a channel with a different one is refused (LedgerError).

    The identity's certificate must chain to a CA of ``consortium`` (CertificateError).
    """
    if settings.backend == "embedded":
        return EmbeddedLedger.open(
            settings.path, identity, consortium=consortium, clock=clock,
            busy_timeout=settings.busy_timeout_s,
        )  # fmt: skip
    if settings.backend == "memory":
        return _memory(settings, identity, consortium, clock)
    if settings.backend == "fabric" and settings.fabric is not None:
        return _fabric(settings, identity, consortium, clock)
    raise LedgerError(
        f"ledger backend {settings.backend!r} is not available yet; use 'embedded' or 'memory'"
    )


def open_for_reading(settings: Settings, pki: Path | None = None) -> Ledger:
    """A handle that reads the ledger ``settings`` name (audit, ``ledger show``, the demo).

    The embedded file opens read-only with no identity. A ledger that is not a local file (a
    Fabric channel) is read as this organization: ``[organization] identity`` signs the queries,
    and the consortium (``pki``, else ``[organization] pki``) must be the channel's.
    """
    if settings.ledger.backend == "embedded":
        return EmbeddedLedger.open(settings.ledger.path)
    org = settings.organization
    if org is None or org.identity is None:
        backend = settings.ledger.backend
        raise ConfigError(f"reading a {backend} ledger needs [organization] identity")
    consortium = load_consortium(pki or org.pki or DEFAULT_PKI)
    return open_ledger(settings.ledger, load_identity(org.identity), consortium)


def require_fabric() -> None:
    """Raise MissingExtra unless the ``[fabric]`` extra is installed.

    Only a missing ``fabric_protos`` (the extra's one package) is translated; any other import
    failure is a bug and keeps its traceback.
    """
    try:
        import fabric_protos.gateway.gateway_pb2  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "fabric_protos":
            raise
        raise MissingExtra(
            "the Fabric ledger needs the [fabric] extra (hyperledger-fabric-protos): "
            "pip install 'fedchain[fabric]' (in a checkout: pip install -e '.[fabric]')",
            extra="fabric",
        ) from exc


def _fabric(
    settings: LedgerSettings,
    identity: Identity | None,
    consortium: Consortium,
    clock: Callable[[], float],
) -> Ledger:
    require_fabric()
    from fedchain.ledger.fabric import open_fabric_ledger  # optional extra: import late

    if settings.fabric is None:
        raise LedgerError("backend 'fabric' needs a [ledger.fabric] section")
    return open_fabric_ledger(
        settings.fabric,
        identity,
        consortium=consortium,
        resume_file=settings.fabric.resume_file,
        clock=clock,
    )


def _memory(
    settings: LedgerSettings,
    identity: Identity | None,
    consortium: Consortium,
    clock: Callable[[], float],
) -> MemoryLedger:
    if identity is not None:
        consortium.org_of(identity.cert)
    cas = ",".join(sorted(consortium.fingerprints().values()))
    key = (consortium.name, cas, str(settings.path))
    with _MEMORY_LOCK:
        store = _MEMORY.get(key)
        if store is None:
            store = MemoryStore(clock)
            store.append([consortium_record(consortium)], consortium.aggregator)
            _MEMORY[key] = store
    return MemoryLedger(store, "" if identity is None else identity.org)
