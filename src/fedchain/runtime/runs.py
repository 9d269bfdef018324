"""Runs on the ledger: the ``run`` record, and where a restarted aggregator picks up."""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedchain.hashing import sha256_hex
from fedchain.ledger import Ledger, Query, canonical_json
from fedchain.runtime.rounds import RUN_END

__all__ = ["ResumePoint", "app_sha256", "resume_point", "run_record", "strategy_sha256"]


@dataclass(frozen=True)
class ResumePoint:
    """The state of a run on the ledger: started?, rounds closed, the model to go on from, and
    whether the run ended (its ServerApp returned or failed)."""

    started: bool
    rounds_closed: int
    model_sha256: str | None
    ended: bool = False


def run_record(
    org: str, run: str, *, app: str, strategy: str, model: str, config: dict[str, Any]
) -> dict[str, Any]:
    """The ``run`` record the aggregator writes before the first task."""
    return {
        "v": 1,
        "kind": "run",
        "org": org,
        "run": run,
        "app_sha256": app,
        "strategy_sha256": strategy,
        "model_sha256": model,
        "config": config,
    }


def resume_point(ledger: Ledger, run: str) -> ResumePoint:
    """Read the run's records: the last closed round and its global model hash."""
    entries = ledger.metadata_get(Query(run=run))
    started = [e for e in entries if e.record.kind == "run"]
    if not started:
        return ResumePoint(False, 0, None)
    model = started[0].record["model_sha256"]
    closed, ended = 0, False
    for entry in entries:
        if entry.record.kind != "close":
            continue
        ended = ended or RUN_END in entry.record["metrics"]
        if int(entry.record["round"]) > closed:
            closed = int(entry.record["round"])
            model = entry.record["model_sha256"] or model
    return ResumePoint(True, closed, model, ended)


def app_sha256(target: object) -> str:
    """Hash of the code of a Flower app: its source file, or every file of an app directory."""
    if isinstance(target, Path) and target.is_dir():
        digest = hashlib.sha256()
        for path in sorted(
            p for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ):
            digest.update(str(path.relative_to(target)).encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()
    try:
        source = inspect.getsource(inspect.getmodule(target) or target)  # type: ignore[arg-type]
    except (TypeError, OSError):
        source = repr(target)
    return sha256_hex(source.encode())


def strategy_sha256(strategy: object) -> str:
    """Hash of a strategy's class and its scalar settings (what the run was configured with)."""
    settings = {
        k: v
        for k, v in sorted(vars(strategy).items())
        if isinstance(v, int | float | str | bool) and not k.startswith("__")
    }
    description = {
        "class": f"{type(strategy).__module__}.{type(strategy).__qualname__}",
        "settings": {k: str(v) for k, v in settings.items()},
    }
    return sha256_hex(canonical_json(description))
