"""The Hyperledger Fabric backend: a small Gateway client and ``FabricLedger``.

There is no maintained Python SDK for Fabric; this package speaks the Gateway protocol
directly (``hyperledger-fabric-protos`` + ``grpcio`` + ``cryptography``), shaped like the
official fabric-gateway clients. See ``docs/fabric.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fedchain.config import FabricSettings
from fedchain.errors import ConfigError, LedgerError, PKIError, RuleViolation
from fedchain.ledger.base import Query
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.fabric.client import (
    Commit,
    CommitStatus,
    Contract,
    Gateway,
    Network,
    Proposal,
    Timeouts,
    Transaction,
    connect,
    open_channel,
)
from fedchain.ledger.fabric.events import ChaincodeEvent, ChaincodeEvents
from fedchain.ledger.fabric.follow import pack_seq, unpack_seq
from fedchain.ledger.fabric.identity import (
    ClientIdentity,
    Hash,
    Signer,
    from_pki_identity,
    load_msp_identity,
    private_key_signer,
    sha256,
)
from fedchain.ledger.fabric.ledger import FabricLedger
from fedchain.ledger.fabric.reach import CONNECT_TIMEOUT, HINT, ensure_reachable
from fedchain.ledger.fabric.retry import Backoff
from fedchain.ledger.records import Record
from fedchain.pki import Consortium, Identity

__all__ = [
    "Backoff",
    "ChaincodeEvent",
    "ChaincodeEvents",
    "ClientIdentity",
    "Commit",
    "CommitStatus",
    "Contract",
    "FabricLedger",
    "Gateway",
    "Hash",
    "Network",
    "Proposal",
    "Signer",
    "Timeouts",
    "Transaction",
    "check_gateway",
    "connect",
    "ensure_consortium",
    "from_pki_identity",
    "load_msp_identity",
    "open_fabric_ledger",
    "pack_seq",
    "private_key_signer",
    "sha256",
    "unpack_seq",
]


def open_fabric_ledger(
    settings: FabricSettings,
    identity: Identity | None = None,
    *,
    password: bytes | None = None,
    consortium: Consortium | None = None,
    resume_file: Path | None = None,
    timeouts: Timeouts | None = None,
    clock: Callable[[], float] = time.time,
) -> FabricLedger:
    """Open a :class:`FabricLedger` as configured by ``[ledger.fabric]``.

    The signing identity is the MSP folder ``settings.identity`` when set (a fedchain, cryptogen
    or Fabric CA folder; ``msp_id`` required unless ``identity`` names the org), else the
    fedchain ``identity``; its MSP id is ``settings.msp_id`` or the identity's org. With a
    ``consortium``, :func:`ensure_consortium` runs on the new handle.
    """
    client, signer = _signing_identity(settings, identity, password)
    gateway = connect(
        settings.endpoint, client, signer, tls_ca=_tls_ca(settings), timeouts=timeouts,
        clock=clock,
    )  # fmt: skip
    try:
        ledger = FabricLedger(
            gateway, channel=settings.channel, chaincode=settings.chaincode,
            resume_file=resume_file, owns_gateway=True,
        )  # fmt: skip
    except BaseException:
        gateway.close()
        raise
    if consortium is not None:
        try:
            ensure_consortium(ledger, consortium_record(consortium))
        except BaseException:
            ledger.close()
            raise
    return ledger


def check_gateway(
    settings: FabricSettings, *, timeout: float = CONNECT_TIMEOUT, hint: str = HINT
) -> None:
    """Raise GatewayUnreachable unless the gateway of ``settings`` accepts a connection.

    No identity and no call: for a quick check before starting processes that will use it.
    """
    channel = open_channel(settings.endpoint, tls_ca=_tls_ca(settings))
    try:
        ensure_reachable(channel, settings.endpoint, timeout=timeout, hint=hint)
    finally:
        channel.close()


def _tls_ca(settings: FabricSettings) -> bytes | None:
    if settings.tls_ca is None:
        return None
    try:
        return settings.tls_ca.read_bytes()
    except OSError as exc:
        raise PKIError(f"cannot read the Fabric TLS CA {settings.tls_ca}: {exc}") from exc


def _signing_identity(
    settings: FabricSettings, identity: Identity | None, password: bytes | None
) -> tuple[ClientIdentity, Signer]:
    if settings.identity is not None:
        msp_id = settings.msp_id or (identity.org if identity is not None else None)
        if msp_id is None:
            raise ConfigError("ledger.fabric.msp_id is required with ledger.fabric.identity")
        return load_msp_identity(settings.identity, msp_id, password=password)
    if identity is not None:
        return from_pki_identity(identity, settings.msp_id)
    raise ConfigError("the Fabric ledger needs an identity: set ledger.fabric.identity")


def ensure_consortium(ledger: FabricLedger, expected: Record) -> None:
    """Make sure the channel's consortium record is ``expected``.

    The aggregator writes it when the channel has none yet (the genesis of a fedchain ledger);
    anyone else leaves that to the aggregator. A channel whose record differs (other orgs or
    CAs) raises LedgerError: this PKI and that ledger do not belong together.
    """
    found = ledger.metadata_get(Query(kind="consortium"))
    if not found and ledger.org == expected.org:
        try:
            ledger.metadata_publish(expected)
        except RuleViolation as exc:
            if exc.rule != "consortium.exists":  # another aggregator process was first
                raise
        found = ledger.metadata_get(Query(kind="consortium"))
    if found and found[0].record.canonical != expected.canonical:
        raise LedgerError(
            "the channel's consortium record differs from the local consortium "
            f"(channel: {found[0].record.canonical.decode()})"
        )
