"""The two long-running processes: the aggregator (``fedchain-server``) and an organization
(``fedchain-client``), assembled from configuration: identity, consortium, ledger, data plane,
and the user's Flower app. The CLIs are thin shells over :func:`serve` and :func:`participate`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flwr.app import Context, RecordDict

from fedchain.config import LedgerSettings
from fedchain.errors import AttachRefused, ConfigError, LedgerNotFound, TransportError
from fedchain.flower.recorded import ledger_recorded
from fedchain.flower.secagg_mod import secure_capable
from fedchain.ledger import Ledger, Query
from fedchain.ledger.checkpoint import GuardedLedger
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.ledger.factory import open_ledger
from fedchain.pki import Consortium, Identity, load_consortium, load_identity
from fedchain.runtime.apps import AppRef, load_component, resolve_app
from fedchain.runtime.client import ClientRuntime, ClientSettings
from fedchain.runtime.grid import GridSettings, LedgerGrid
from fedchain.runtime.messages import run_number
from fedchain.runtime.run_config import effective_run_config, ledger_config
from fedchain.runtime.runs import app_sha256, resume_point
from fedchain.runtime.selection import SelectionPolicy, take_all
from fedchain.runtime.service import attach_reporter, say
from fedchain.transport import CallLimits, DataPlaneClient, DataPlaneServer

__all__ = ["ClientOptions", "ServerOptions", "participate", "serve"]

log = logging.getLogger(__name__)
Events = Callable[[str, dict[str, Any]], None]


@dataclass
class ServerOptions:
    """Everything the aggregator process needs (built by the CLI from config and flags)."""

    pki: Path
    identity: Path
    ledger: LedgerSettings
    app: str
    address: str = "127.0.0.1:9443"
    rounds: int | None = None  # --rounds: the app's num-server-rounds (see runtime.run_config)
    run: str | None = None
    models_dir: Path = Path("fedchain-models")
    deadline_s: float = 600.0
    min_replies: int = 1
    secure_max_weight: int | None = None  # --secure: SecureAggregation around the strategy
    min_nodes: int | None = None
    wait_for: int | None = None
    selection: SelectionPolicy = field(default_factory=take_all)
    max_payload_bytes: int = 256 << 20
    limits: CallLimits = field(default_factory=CallLimits)
    run_config: dict[str, Any] = field(default_factory=dict)
    insecure_dev: bool = False
    password: bytes | None = None


@dataclass
class ClientOptions:
    """Everything an organization's process needs."""

    pki: Path
    identity: Path
    ledger: LedgerSettings
    app: str
    server: str = "127.0.0.1:9443"
    run: str | None = None
    exit_when_done: bool = False
    secure: bool = False  # --secure: the ClientApp runs inside the anchored secagg mod
    max_payload_bytes: int = 256 << 20
    node_config: dict[str, Any] = field(default_factory=dict)
    insecure_dev: bool = False
    password: bytes | None = None
    org: str | None = None  # the organization this process is configured as (--org)


def _check_ledger_path(settings: LedgerSettings) -> None:
    """A directory can never become the embedded ledger file: say so at once."""
    if settings.backend == "embedded" and Path(settings.path).is_dir():
        raise ConfigError(f"ledger path {settings.path} is a directory, not a ledger file")


def _guarded(
    ledger: Ledger, settings: LedgerSettings, identity: Identity, consortium: Consortium
) -> Ledger:
    """An embedded ledger behind this organization's checkpoint (refused if it went backwards
    or forked since); a Fabric channel cannot roll back, so it is used as it is."""
    if settings.backend != "embedded":
        return ledger
    path = settings.checkpoint_for(identity.org, identity.name)
    try:
        return GuardedLedger(ledger, path, identity, consortium)
    except BaseException:
        ledger.close()
        raise


def _open_or_create(settings: LedgerSettings, identity: Identity, consortium: Consortium) -> Ledger:
    """Open the configured ledger; the aggregator creates an embedded one on first use."""
    _check_ledger_path(settings)
    try:
        ledger = open_ledger(settings, identity, consortium)
    except LedgerNotFound:
        if settings.backend != "embedded" or identity.org != consortium.aggregator:
            raise
        if Path(settings.path).exists():
            raise
        EmbeddedLedger.create(settings.path, consortium, identity).close()
        ledger = open_ledger(settings, identity, consortium)  # with the configured settings
    return _guarded(ledger, settings, identity, consortium)


def choose_run(ledger: Ledger, app_hash: str, requested: str | None) -> str:
    """The requested run, else the newest unfinished run of the same app (resume), else a new id."""
    if requested:
        return requested
    for entry in reversed(ledger.metadata_get(Query(kind="run"))):
        record = entry.record
        if record["app_sha256"] != app_hash:
            continue
        if not resume_point(ledger, str(record.run)).ended:
            return str(record.run)
        break
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"run-{stamp}-{secrets.token_hex(2)}"


def _wait_for_nodes(
    present: Callable[[], frozenset[str]], count: int, timeout: float, changed: threading.Condition
) -> None:
    deadline = time.monotonic() + timeout
    with changed:
        while len(present()) < count and changed.wait(max(deadline - time.monotonic(), 0)):
            pass


def _count(value: Any) -> int:
    """A count setting (``min-nodes``) of the run config; 0 when absent or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def serve(options: ServerOptions, events: Events | None = None) -> str:
    """Run the aggregator: data plane up, the ServerApp on a ``LedgerGrid``; returns the run id."""
    consortium = load_consortium(options.pki)
    identity = load_identity(options.identity, password=options.password)
    if identity.org != consortium.aggregator:
        raise ConfigError(
            f"{identity.org} is not the consortium's aggregator ({consortium.aggregator})"
        )
    ref: AppRef = resolve_app(options.app, "serverapp")
    config = effective_run_config(ref, options.run_config, options.rounds)
    server_app = load_component(ref)
    ledger = _open_or_create(options.ledger, identity, consortium)
    dataplane = DataPlaneServer(
        identity,
        consortium,
        max_payload_bytes=options.max_payload_bytes,
        insecure_dev=options.insecure_dev,
        limits=options.limits,
    )
    try:
        port = dataplane.start(options.address)
        code_hash = app_sha256(ref.directory or server_app)
        run = choose_run(ledger, code_hash, options.run)
        host = options.address.rsplit(":", 1)[0]
        (events or (lambda _n, _d: None))("listening", {"address": f"{host}:{port}", "run": run})
        grid = LedgerGrid(
            ledger,
            dataplane,
            consortium.orgs,
            GridSettings(
                run=run,
                deadline_s=options.deadline_s,
                wait_for=options.wait_for,
                selection=options.selection,
                max_reply_bytes=options.max_payload_bytes,
                models_dir=options.models_dir,
                app_sha256=code_hash,
                config=ledger_config(config),
                run_config=config,
            ),
            present=dataplane.present,
            events=events,
        )
        needed = options.min_nodes or _count(config.get("min-nodes"))
        if needed:
            _wait_for_nodes(
                dataplane.present, needed, options.deadline_s, dataplane.presence_changed
            )
        server_config: dict[str, Any] = dict(config)
        if ref.run_config is None:  # the module:attr apps' extra setting (the built-in app's)
            server_config.setdefault("min-replies", options.min_replies)
        context = Context(run_number(run), 0, {}, RecordDict(), server_config)
        with grid.closing_rounds(), ledger_recorded(
            options.min_replies, options.models_dir, options.secure_max_weight
        ):
            server_app(grid, context)
        return run
    finally:
        dataplane.stop(grace=1.0)
        ledger.close()


def participate(
    options: ClientOptions, events: Events | None = None, stop: threading.Event | None = None
) -> None:
    """Run one organization until ``stop`` (or the run is done, with ``exit_when_done``)."""
    consortium = load_consortium(options.pki)
    identity = _client_identity(options, consortium)
    client_app = load_component(resolve_app(options.app, "clientapp"))
    if options.secure:
        client_app = secure_capable(client_app)
    ledger = _wait_for_ledger(options.ledger, identity, consortium, stop, events)
    dataplane = DataPlaneClient(
        options.server, identity, consortium, insecure_dev=options.insecure_dev
    )
    try:
        say(events, "waiting-aggregator", f"waiting for the aggregator at {options.server}")
        with dataplane.attached(attach_reporter(events, options.server)) as attach:
            runtime = ClientRuntime(
                ledger,
                dataplane,
                client_app,
                orgs=consortium.orgs,
                settings=ClientSettings(
                    options.run,
                    options.exit_when_done,
                    options.max_payload_bytes,
                    options.node_config,
                ),
                events=events,
            )
            stop = stop or threading.Event()
            runtime.run(_Either(stop, attach.ended))
            if attach.ended.is_set() and not (runtime.done.is_set() or stop.is_set()):
                _attach_failed(options.server, attach.refused)
    finally:
        dataplane.close()
        ledger.close()


class _Either:
    """Set when either event is: stop on request, or when the attach loop has given up."""

    def __init__(self, first: threading.Event, second: threading.Event) -> None:
        self._events = (first, second)

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)


def _attach_failed(server: str, refused: str | None) -> None:
    """Raise why the organization cannot stay attached to the aggregator at ``server``."""
    if refused is None:
        raise TransportError(f"the attach loop to the aggregator at {server} stopped")
    raise AttachRefused(f"cannot attach to the aggregator at {server}: {refused}")


def _client_identity(options: ClientOptions, consortium: Consortium) -> Identity:
    """The organization's identity; it must be of the org the process is configured as."""
    if options.org is not None and options.org not in consortium.orgs:
        raise ConfigError(
            f"{options.org} is not an organization of consortium {consortium.name!r} "
            f"({', '.join(consortium.orgs)})"
        )
    identity = load_identity(options.identity, password=options.password)
    if options.org is not None and identity.org != options.org:
        raise ConfigError(
            f"the identity at {options.identity} is of {identity.org}, not of {options.org}"
        )
    return identity


def _wait_for_ledger(
    settings: LedgerSettings,
    identity: Identity,
    consortium: Consortium,
    stop: threading.Event | None,
    events: Events | None,
    timeout: float = 60.0,
) -> Ledger:
    """Organizations may start before the aggregator has created the embedded ledger file:
    wait for a missing file (saying so at once), but report anything else at once: a file
    that is not a ledger, of another consortium, or a folder that does not exist."""
    _check_ledger_path(settings)
    path = Path(settings.path)
    if settings.backend == "embedded" and not path.parent.is_dir():
        raise ConfigError(f"no folder {path.parent} for the ledger file {path.name}")
    deadline, delay, said, retried = time.monotonic() + timeout, 0.05, False, False
    while True:
        try:
            ledger = open_ledger(settings, identity, consortium)
        except LedgerNotFound:
            there = path.exists()
            if settings.backend != "embedded" or (there and retried):
                raise
            if there:  # maybe created this instant: open it once more, then any error stands
                retried = True
                continue
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                raise LedgerNotFound(
                    f"no ledger file at {path} after {timeout:g} s: is the aggregator "
                    "running with this ledger file?"
                ) from None
        else:
            return _guarded(ledger, settings, identity, consortium)
        if not said:
            said = True
            say(events, "waiting-ledger", f"waiting for the ledger file {path} (the "
                f"aggregator creates it); giving up after {timeout:g} s")  # fmt: skip
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
