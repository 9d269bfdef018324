"""The run config: the typed settings both halves of a Flower app read from ``Context.run_config``.

For a Flower app directory it is what ``flwr run`` would give: the app's
``[tool.flwr.app.config]`` (nested tables as dotted keys), overridden by ``[run_config]`` of
``fedchain.toml`` the way ``flwr run --run-config`` overrides (a key the app does not declare is
an error), and ``--rounds N`` sets ``num-server-rounds``. For a ``module:attr`` app there is no
app config: ``[run_config]`` plus ``rounds`` and ``num-server-rounds``.

On the ledger: the run record's ``config`` holds the numeric settings (the ledger takes only
numbers there; booleans as 1/0); the whole typed config travels in every task payload (so the
task record's ``payload_sha256`` covers it) and each organization checks it against the run
record and against the run's earlier tasks before building the ClientApp's ``Context``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ConfigRecord, RecordDict

from fedchain.errors import ConfigError, FedchainError
from fedchain.runtime.apps import AppRef
from fedchain.runtime.rounds import finite_metrics

__all__ = [
    "RUN_CONFIG_RECORD",
    "RunConfig",
    "effective_run_config",
    "ledger_config",
    "split_run_config",
    "with_run_config",
]

RunConfig = dict[str, bool | int | float | str]
#: The ConfigRecord that carries the run config in a task payload (never shown to the app).
RUN_CONFIG_RECORD = "fedchain.run-config"
ROUNDS_KEY = "num-server-rounds"
DEFAULT_ROUNDS = 3


def effective_run_config(
    ref: AppRef, overrides: Mapping[str, Any], rounds: int | None
) -> RunConfig:
    """The run config of app ``ref`` with ``overrides`` (``[run_config]``) and ``--rounds``."""
    if ref.run_config is None:  # module:attr: no declared settings to check against
        count = rounds or DEFAULT_ROUNDS
        return {**overrides, "rounds": count, ROUNDS_KEY: count}
    config: RunConfig = dict(ref.run_config)
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ConfigError(
            f"[run_config] sets {', '.join(unknown)}, which the app's [tool.flwr.app.config] "
            "does not declare (flwr run --run-config refuses them too)"
        )
    config.update(overrides)
    if rounds is not None:
        if ROUNDS_KEY not in config:
            raise ConfigError(
                f"--rounds sets {ROUNDS_KEY}, which the app's [tool.flwr.app.config] does not "
                "declare: the app decides its own rounds; drop --rounds"
            )
        config[ROUNDS_KEY] = rounds
    return config


def ledger_config(config: Mapping[str, Any]) -> dict[str, float]:
    """What the run record's ``config`` holds: the numeric settings (booleans as 1/0)."""
    return finite_metrics(config)


def with_run_config(content: RecordDict, config: Mapping[str, Any]) -> RecordDict:
    """``content`` plus the run config record (a new RecordDict; ``content`` is unchanged)."""
    carried = RecordDict(dict(content.items()))
    carried[RUN_CONFIG_RECORD] = ConfigRecord(dict(config))
    return carried


def split_run_config(content: RecordDict) -> RunConfig | None:
    """Remove the run config record from ``content``; its settings, or None if absent."""
    if RUN_CONFIG_RECORD not in content:
        return None
    record = content.pop(RUN_CONFIG_RECORD)
    if not isinstance(record, ConfigRecord):
        raise FedchainError(f"the task's {RUN_CONFIG_RECORD} is not a ConfigRecord")
    config: RunConfig = {}
    for key, value in record.items():
        if not isinstance(value, bool | int | float | str):
            raise FedchainError(f"run config {key!r} is a {type(value).__name__}")
        config[key] = value
    return config
