"""Where the demo's consortium and ledger come from, and how the demo checks them afterwards.

* embedded: a fresh PKI and SQLite ledger file in the demo's working folder; checked by the
  full audit (hash chain, signatures, certificates, write rules, model files).
* fabric: the organizations of a running Fabric network, as the ``fedchain.toml`` files that
  ``fabric-network/network.sh up`` writes describe them (``aggregator.toml`` and one
  ``<org>.toml`` per organization); checked by replaying the channel's records through the
  write rules (Fabric's endorsements and block hashes protect the blocks themselves) and the
  model files against their recorded hashes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fedchain.config import Settings, load_settings
from fedchain.errors import ConfigError
from fedchain.ledger.audit import MODEL_SUFFIX, audit, check_models
from fedchain.ledger.audit_report import RoundSummary
from fedchain.ledger.factory import open_for_reading, require_fabric
from fedchain.ledger.replay import replay
from fedchain.pki import init_consortium

__all__ = ["DEFAULT_NETWORK", "DemoPlan", "LedgerCheck", "embedded_plan", "fabric_plan"]

#: Where ``fabric-network/network.sh up`` writes the fedchain.toml files (from the repo root).
DEFAULT_NETWORK = Path("fabric-network/.work/fedchain")
AGGREGATOR_TOML = "aggregator.toml"
START_HINT = "start the local network with `fabric-network/network.sh up` (docs/fabric.md)"


@dataclass
class LedgerCheck:
    """What the demo verified on the ledger after training."""

    ok: bool
    entries: int
    rounds: list[RoundSummary]
    verified: str  # what was checked, for people
    problems: list[str] = field(default_factory=list)


@dataclass
class DemoPlan:
    """The arguments of every process, and how to check the ledger once they are done."""

    ledger: str  # where the ledger lives, for people (a file path for the embedded one)
    orgs: list[str]
    server_args: list[str]
    client_args: dict[str, list[str]]
    check: Callable[[Path, str], LedgerCheck]  # (models folder, run id) -> the check
    explorer: list[str] = field(default_factory=list)  # `fedchain explorer` options to view it


def embedded_plan(workdir: Path, orgs: int) -> DemoPlan:
    """A new consortium of ``orgs`` organizations and an embedded ledger inside ``workdir``."""
    names = [f"org{i}" for i in range(1, orgs + 1)]
    pki, ledger = workdir / "pki", workdir / "ledger.sqlite"
    init_consortium(pki, consortium="demo", orgs=names, aggregator=names[0])
    common = ["--pki", str(pki), "--ledger", str(ledger)]

    def check(models: Path, run: str) -> LedgerCheck:
        report = audit(ledger, models_dir=models)
        altered = report.models.mismatched if report.models is not None else []
        return LedgerCheck(
            ok=report.ok,
            entries=report.entries,
            rounds=[r for r in report.rounds if r.run == run] or report.rounds,
            verified="hash chain, signatures, certificates, write rules and model files",
            problems=[f"{sha}{MODEL_SUFFIX} altered" for sha in altered],
        )

    return DemoPlan(
        ledger=str(ledger),
        orgs=names,
        server_args=[*common, "--address", "127.0.0.1:0"],
        client_args={org: [*common, "--org", org] for org in names},
        check=check,
        explorer=["--ledger", str(ledger), "--pki", str(pki)],
    )


def fabric_plan(network: Path) -> DemoPlan:
    """The organizations of the Fabric network whose fedchain.toml files are in ``network``.

    Every process runs with its own file (its identity, its organization's peer); the demo
    only adds a fresh run id, the data-plane address and the models folder. Checked first, so
    nothing starts that cannot work: the ``[fabric]`` extra (MissingExtra), the files
    (ConfigError) and every organization's gateway (GatewayUnreachable).
    """
    require_fabric()
    aggregator, orgs, members = _network_settings(network)
    _check_gateways(members)
    run = f"demo-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"  # a fresh run

    def check(models: Path, run_id: str) -> LedgerCheck:
        return _replay_check(aggregator, models, run_id)

    def config(path: Path) -> list[str]:
        return ["--config", str(path), "--run", run]

    return DemoPlan(
        ledger=aggregator.ledger.describe(),
        orgs=sorted(orgs),
        server_args=[*config(network / AGGREGATOR_TOML), "--address", "127.0.0.1:0"],
        client_args={org: config(path) for org, path in sorted(orgs.items())},
        check=check,
        explorer=["--config", str(next(iter(sorted(orgs.values()))))],
    )


def _network_settings(network: Path) -> tuple[Settings, dict[str, Path], list[Settings]]:
    """The aggregator's settings, each organization's fedchain.toml, and every file's settings
    (the aggregator's first), checked for a demo."""
    if not (network / AGGREGATOR_TOML).is_file():
        raise ConfigError(
            f"no {AGGREGATOR_TOML} in {network}: {START_HINT}, or pass --network"
        )
    aggregator = _fabric_settings(network / AGGREGATOR_TOML)
    orgs: dict[str, Path] = {}
    members = [aggregator]
    for path in sorted(network.glob("*.toml")):
        if path.name == AGGREGATOR_TOML:
            continue
        settings = _fabric_settings(path)
        members.append(settings)
        org = settings.organization.id if settings.organization else path.stem
        if org in orgs:
            raise ConfigError(f"{path} and {orgs[org]} both configure {org}")
        orgs[org] = path
    if not orgs:
        raise ConfigError(f"{network} has no organization's fedchain.toml next to aggregator.toml")
    return aggregator, orgs, members


def _check_gateways(members: list[Settings]) -> None:
    """Every gateway the processes will use accepts a connection (each endpoint once)."""
    from fedchain.ledger.fabric import check_gateway  # the [fabric] extra: import late

    seen: set[tuple[str, Path | None]] = set()
    for settings in members:
        fabric = settings.ledger.fabric
        if fabric is not None and (fabric.endpoint, fabric.tls_ca) not in seen:
            seen.add((fabric.endpoint, fabric.tls_ca))
            check_gateway(fabric, hint=START_HINT)


def _fabric_settings(path: Path) -> Settings:
    settings = load_settings(path)
    if settings.ledger.backend != "fabric" or settings.ledger.fabric is None:
        raise ConfigError(f"{path}: the ledger backend is {settings.ledger.backend!r}, not fabric")
    if settings.organization is None or settings.organization.identity is None:
        raise ConfigError(f"{path}: [organization] needs id, pki and identity")
    return settings


def _replay_check(aggregator: Settings, models: Path, run: str) -> LedgerCheck:
    """Read the channel as the aggregator, replay every record, check the run's models."""
    handle = open_for_reading(aggregator)
    try:
        entries = handle.metadata_get()
    finally:
        handle.close()
    rows = [r for r in replay(entries) if r.run == run]
    hashes = [r.model_sha256 for r in rows if r.model_sha256]
    models_check = check_models(models, hashes)
    return LedgerCheck(
        ok=not models_check.mismatched and bool(rows),
        entries=len(entries),
        rounds=rows,
        verified="write rules replayed over the channel's records, and model files",
        problems=[f"{sha}{MODEL_SUFFIX} altered" for sha in models_check.mismatched]
        + ([] if rows else [f"the channel has no record of run {run}"]),
    )
