"""Run an ``examples/`` app in Flower's simulation through its public Python entry point, as a
user would: ``python -m tests.integration.examples_flower_sim APP_DIR NODES`` (Ray; run it in
its own process). The app is imported from its directory exactly as fedchain imports it.
"""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path
from typing import Any

from flwr.simulation import run_simulation


def component(app_dir: Path, name: str) -> Any:
    """The object ``[tool.flwr.app.components] name`` of the app directory refers to."""
    data = tomllib.loads((app_dir / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, attr = data["tool"]["flwr"]["app"]["components"][name].partition(":")
    return getattr(importlib.import_module(module), attr)


if __name__ == "__main__":
    app_dir = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(app_dir))
    run_simulation(
        server_app=component(app_dir, "serverapp"),
        client_app=component(app_dir, "clientapp"),
        num_supernodes=int(sys.argv[2]),
        backend_config={
            "client_resources": {"num_cpus": 1},
            "init_args": {"num_cpus": 2, "include_dashboard": False},  # no fixed dashboard port
        },
    )
