"""Turning ``fedchain.toml`` + environment + flags into runtime options (flags win)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fedchain.cli._common import password_from_env
from fedchain.config import DEFAULT_PKI, LedgerSettings, Settings, load_settings
from fedchain.errors import ConfigError
from fedchain.pki import AGGREGATOR_NAME, load_consortium
from fedchain.runtime.apps import DEFAULT_CLIENT_APP, DEFAULT_SERVER_APP
from fedchain.runtime.selection import policy_named

if TYPE_CHECKING:  # the runtime imports Flower: keep `fedchain --help` and `audit` fast
    from fedchain.runtime.process import ClientOptions, ServerOptions

__all__ = ["client_options", "load", "server_options"]


def load(config: Path | None) -> Settings:
    """Settings from ``config`` (or ``./fedchain.toml`` when present) and FEDCHAIN_* variables."""
    if config is None and Path("fedchain.toml").is_file():
        config = Path("fedchain.toml")
    return load_settings(config)


def _ledger(settings: Settings, path: Path | None, backend: str | None) -> LedgerSettings:
    data = settings.ledger.model_dump()
    if path is not None:
        data["path"] = path
    if backend is not None:
        data["backend"] = backend
    try:
        return LedgerSettings.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"ledger settings: {exc}") from exc


def _pki(settings: Settings, pki: Path | None) -> Path:
    org = settings.organization
    return pki or (org.pki if org and org.pki else DEFAULT_PKI)


def _password(settings: Settings, given: bytes | None) -> bytes | None:
    """The key password: ``--password-env`` wins over ``[organization] password_env``."""
    org = settings.organization
    if given is not None or org is None or org.password_env is None:
        return given
    return password_from_env(org.password_env)


def server_options(settings: Settings, **flags: Any) -> ServerOptions:
    """Options of ``fedchain-server``: flags (None = not given) over the settings."""
    pki = _pki(settings, flags.get("pki"))
    org = settings.organization
    identity = flags.get("identity") or (org.identity if org and org.identity else None)
    if identity is None:
        identity = pki / load_consortium(pki).aggregator / "users" / AGGREGATOR_NAME
    srv = settings.server
    selection = flags.get("selection") or srv.selection
    policy = policy_named(
        selection,
        k=flags.get("k") or srv.k,
        key=flags.get("selection_key") or srv.selection_key,
        minimum=flags.get("threshold") if flags.get("threshold") is not None else srv.threshold,
    )
    from fedchain.runtime.process import ServerOptions
    from fedchain.transport.limits import CallLimits

    return ServerOptions(
        pki=pki,
        identity=identity,
        ledger=_ledger(settings, flags.get("ledger"), flags.get("ledger_backend")),
        app=flags.get("app") or srv.app or DEFAULT_SERVER_APP,
        address=flags.get("address") or srv.address,
        # only when given: it overrides the app's num-server-rounds (runtime/run_config.py)
        rounds=flags.get("rounds") or (srv.rounds if "rounds" in srv.model_fields_set else None),
        run=flags.get("run"),
        models_dir=flags.get("models") or Path("fedchain-models"),
        deadline_s=flags.get("deadline") or srv.deadline_s,
        min_replies=flags.get("min_replies") or srv.min_replies,
        min_nodes=flags.get("min_nodes"),
        wait_for=flags.get("wait_for"),
        selection=policy,
        max_payload_bytes=int((flags.get("max_payload_mb") or srv.max_payload_mb) * (1 << 20)),
        secure_max_weight=(flags.get("max_weight") or srv.max_weight)
        if flags.get("secure") or srv.secure
        else None,
        limits=CallLimits(srv.max_calls_per_org, srv.max_calls, srv.stream_idle_s),
        run_config=dict(settings.run_config),
        insecure_dev=bool(flags.get("insecure_dev")) or settings.tls.insecure_dev,
        password=_password(settings, flags.get("password")),
    )


def client_options(settings: Settings, **flags: Any) -> ClientOptions:
    """Options of ``fedchain-client``: ``--org`` picks ``<pki>/<org>/users/client1``."""
    pki = _pki(settings, flags.get("pki"))
    org = settings.organization
    identity = flags.get("identity") or (org.identity if org and org.identity else None)
    org_id = flags.get("org") or (org.id if org else None)
    if identity is None:
        if not org_id:
            raise ConfigError(
                "give --identity DIR or --org ORG (or [organization] in fedchain.toml)"
            )
        identity = pki / org_id / "users" / "client1"
    cli = settings.client
    from fedchain.runtime.process import ClientOptions

    return ClientOptions(
        pki=pki,
        identity=identity,
        ledger=_ledger(settings, flags.get("ledger"), flags.get("ledger_backend")),
        app=flags.get("app") or cli.app or DEFAULT_CLIENT_APP,
        server=flags.get("server") or cli.server,
        run=flags.get("run"),
        exit_when_done=bool(flags.get("exit_when_done")),
        secure=bool(flags.get("secure")) or cli.secure,
        node_config=dict(cli.node_config),
        insecure_dev=bool(flags.get("insecure_dev")) or settings.tls.insecure_dev,
        password=_password(settings, flags.get("password")),
        org=org_id,
    )


# -- options both fedchain-server and fedchain-client take ------------------------------------

ConfigOpt = Annotated[
    Path | None, typer.Option(help="fedchain.toml (default: ./fedchain.toml if present)")
]
LedgerOpt = Annotated[Path | None, typer.Option(help="Embedded ledger file")]
LedgerBackendOpt = Annotated[str | None, typer.Option(help="memory | embedded | fabric")]
PasswordEnvOpt = Annotated[str | None, typer.Option(help="Variable holding the key password")]
InsecureDevOpt = Annotated[bool, typer.Option(help="Plaintext on loopback only (development)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable events on stdout")]
VerboseOpt = Annotated[bool, typer.Option("-v", help="Log details")]
