"""Run a Flower app directory in Flower's own simulation, as ``flwr run`` on a local
simulation federation would: ``python -m tests.conformance.flower_sim APP_DIR NODES [JSON]``.

The engine is ``flwr.simulation.run_simulation``'s (its ``_run_simulation``), given the app
directory and a run whose overrides are ``JSON``, so both halves see the run config ``flwr run
--run-config`` would give them (``run_simulation`` itself passes an empty one). Each node gets
``partition-id`` 0..NODES-1, as fedchain's organizations do in sorted order. Exits non-zero
when the ServerApp fails (Flower raises).
"""

from __future__ import annotations

import importlib
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from flwr.app import Context, RecordDict
from flwr.common.config import get_fused_config_from_dir
from flwr.simulation.run_simulation import _run_simulation
from flwr.supercore.constant import NOOP_FEDERATION_ID
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.supercore.telemetry import EventType

RUN_ID = 4242


def _component(app_dir: Path, name: str) -> Any:
    """The object ``[tool.flwr.app.components] name`` refers to."""
    data = tomllib.loads((app_dir / "pyproject.toml").read_text())
    module, _, attr = data["tool"]["flwr"]["app"]["components"][name].partition(":")
    return getattr(importlib.import_module(module), attr)


def simulate(app_dir: Path, nodes: int, overrides: dict[str, Any]) -> None:
    """Run the app on ``nodes`` simulated nodes."""
    sys.path.insert(0, str(app_dir))
    config = get_fused_config_from_dir(app_dir, overrides)
    run = Run.create_empty(run_id=RUN_ID)
    run.override_config = dict(overrides)
    run.primary_task_id = 1
    run.federation_id = NOOP_FEDERATION_ID
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN_ID, 1
    _run_simulation(
        num_supernodes=nodes,
        exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
        client_app=_component(app_dir, "clientapp"),
        server_app=_component(app_dir, "serverapp"),
        backend_config={
            "client_resources": {"num_cpus": 1},
            "init_args": {"num_cpus": 2, "include_dashboard": False},  # no fixed dashboard port
        },
        server_app_context=Context(RUN_ID, 0, {}, RecordDict(), config),
        app_dir=str(app_dir),
        run=run,
        is_app=True,  # the nodes read the run config from app_dir, as under `flwr run`
    )


if __name__ == "__main__":
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    simulate(Path(sys.argv[1]).resolve(), int(sys.argv[2]), extra)
