"""Load users' Flower apps: ``module:attr`` references or a Flower app directory."""

from __future__ import annotations

import importlib
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedchain.errors import ConfigError

__all__ = ["AppRef", "load_component", "resolve_app"]

DEFAULT_SERVER_APP = "fedchain.examples.digits:server_app"
DEFAULT_CLIENT_APP = "fedchain.examples.digits:client_app"


@dataclass(frozen=True)
class AppRef:
    """Where an app component lives: ``module:attr``, plus the directory to import it from
    and, for a Flower app directory, its ``[tool.flwr.app.config]`` (flattened)."""

    reference: str
    directory: Path | None = None
    run_config: dict[str, Any] | None = None  # None: a module:attr reference, no app config


def resolve_app(spec: str, component: str) -> AppRef:
    """``spec`` is ``module:attr`` or a Flower app directory; ``component`` is
    ``serverapp`` or ``clientapp`` (the key under ``[tool.flwr.app.components]``)."""
    path = Path(spec)
    if ":" not in spec or path.is_dir():
        if not path.is_dir():
            raise ConfigError(f"app {spec!r} is neither module:attr nor a directory")
        return _from_directory(path, component)
    return AppRef(spec)


def _from_directory(path: Path, component: str) -> AppRef:
    pyproject = path / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read the Flower app: {exc}") from exc
    app = data.get("tool", {}).get("flwr", {}).get("app", {})
    reference = app.get("components", {}).get(component)
    if not isinstance(reference, str) or ":" not in reference:
        raise ConfigError(f"{pyproject}: [tool.flwr.app.components] has no {component}")
    return AppRef(reference, path.resolve(), _flat_config(app.get("config") or {}, pyproject))


def _flat_config(table: Any, source: Path, prefix: str = "") -> dict[str, Any]:
    """``[tool.flwr.app.config]`` as Flower reads it: nested tables become dotted keys, values
    must be strings, booleans, integers or floats."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [tool.flwr.app.config] must be a table")
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_config(value, source, f"{name}."))
        elif isinstance(value, str | bool | int | float):
            flat[name] = value
        else:
            raise ConfigError(
                f"{source}: setting {name!r} must be a string, boolean, integer or float"
            )
    return flat


def load_component(ref: AppRef) -> Any:
    """Import the referenced object (e.g. a ``ServerApp`` or ``ClientApp``)."""
    module_name, _, attr = ref.reference.partition(":")
    if ref.directory is not None and str(ref.directory) not in sys.path:
        sys.path.insert(0, str(ref.directory))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    return target
