"""Helpers of the explorer tests: a real Chromium (Debian's package) driven by Playwright, the
``fedchain explorer`` command as a real process, and a small run recorded through the API.

The browser is the ``chromium`` executable on ``PATH`` (``FEDCHAIN_CHROMIUM`` overrides it),
never one Playwright downloads. Without it the tests skip with the reason, except in CI
(``CI=true``), where they fail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from tests.integration.runtime_support import WAIT, child_env

from fedchain.ledger import parse_record
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.pki import AGGREGATOR_NAME, Consortium, Identity, identity_dir, load_identity

BIN = Path(sys.executable).parent
RUN = "r1"
APP, STRATEGY = (hashlib.sha256(n.encode()).hexdigest() for n in ("app", "strategy"))
REFUSAL = "num-examples 81 differs from the 80 announced on the ledger"


def chromium() -> str:
    """The path of Debian's chromium; skip (or, in CI, fail) when it is not installed."""
    found = os.environ.get("FEDCHAIN_CHROMIUM") or shutil.which("chromium")
    reason = None
    if found is None:
        reason = "no chromium on PATH (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "Playwright for Python is not installed (pip install -e '.[dev]')"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the browser tests: {reason}", pytrace=False)
        pytest.skip(reason)
    assert found is not None
    return found


class Explorer:
    """``fedchain explorer ARGS --address 127.0.0.1:0`` as a process; ``url`` once it listens."""

    def __init__(self, *args: str | Path, env: dict[str, str] | None = None) -> None:
        self.stderr = ""
        argv = [str(BIN / "fedchain"), "explorer", *map(str, args)]
        if "--address" not in argv:
            argv += ["--address", "127.0.0.1:0"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=child_env(**(env or {})))  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the one line it prints once it listens
        if not line.startswith("explorer: "):
            self.stop()
            raise AssertionError(f"explorer did not start: {line!r} {self.stderr}")
        self.url = line.split()[1].rstrip("/")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, self.stderr = self.proc.communicate(timeout=WAIT)

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def explorer_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "fedchain"), "explorer", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=WAIT)


# -- a recorded run: a refused update, an error, a dropout -------------------------------------


def identities(pki: Path) -> dict[str, Identity]:
    names = {"org1": AGGREGATOR_NAME, "org2": "client1", "org3": "client1"}
    return {o: load_identity(identity_dir(pki, o, n)) for o, n in names.items()}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _rec(kind: str, org: str, **fields: Any) -> Any:
    return parse_record({"v": 1, "kind": kind, "org": org, "run": RUN, **fields})


def round_records(rnd: int) -> list[tuple[str, list[Any]]]:
    """(writer, records) of one round: org2 and org3 train; round 1 refuses org3's update,
    round 2 has org3 fail and drop out, round 3 and later aggregate both."""
    task = f"t{rnd}"
    model = _sha(f"model {rnd - 1}")
    recipients = [{"org": o, "payload_sha256": model, "payload_size": 3} for o in ("org2", "org3")]
    out: list[tuple[str, list[Any]]] = [("org1", [_rec(
        "task", "org1", round=rnd, task=task, type="train", model_sha256=model, deadline=0,
        recipients=recipients)])]  # fmt: skip

    def update(org: str, n: int, ok: bool = True) -> tuple[str, list[Any]]:
        return (org, [_rec("update", org, round=rnd, task=task, status="ok" if ok else "error",
                           update_sha256=_sha(f"{org}{task}") if ok else None, update_size=3,
                           num_examples=n if ok else 0, metrics={"loss": 1.0 / rnd} if ok else {},
                           error=None if ok else "ClientApp error: out of memory")])  # fmt: skip

    out.append(update("org2", 120))
    out.append(update("org3", 80, ok=rnd != 2))
    selected = ["org2"] if rnd == 2 else ["org2", "org3"]
    aggregated = ["org2"] if rnd in (1, 2) else ["org2", "org3"]
    close = _rec(
        "close", "org1", round=rnd, model_sha256=_sha(f"model {rnd}"),
        aggregated=[{"org": o, "update_sha256": _sha(f"{o}{task}")} for o in aggregated],
        dropouts=[{"org": "org3", "stage": "train"}] if rnd == 2 else [],
        rejected=[{"org": "org3", "reason": REFUSAL}] if rnd == 1 else [],
        metrics={"accuracy": 0.5 + rnd / 10, "loss": 1.0 / rnd},
    )  # fmt: skip
    out.append(("org1", [_rec("selection", "org1", round=rnd, task=task, selected=selected),
                         close]))  # fmt: skip
    return out


def record_run(path: Path, consortium: Consortium, pki: Path, rounds: int, planned: int) -> None:
    """A ledger at ``path``: run r1 (``planned`` rounds in its config), ``rounds`` recorded."""
    ids = identities(pki)
    handles = {"org1": EmbeddedLedger.create(path, consortium, ids["org1"])}
    handles.update({o: EmbeddedLedger.open(path, ids[o]) for o in ("org2", "org3")})
    try:
        publish_run(handles, rounds, planned)
    finally:
        for handle in handles.values():
            handle.close()


def publish_run(handles: Mapping[str, Any], rounds: int, planned: int) -> None:
    """Run r1 and its first ``rounds`` rounds, each record written by its organization's handle
    (any backend)."""
    handles["org1"].metadata_publish(_rec(
        "run", "org1", app_sha256=APP, strategy_sha256=STRATEGY,
        model_sha256=_sha("model 0"), config={"rounds": planned}))  # fmt: skip
    for rnd in range(1, rounds + 1):
        append_round(handles, rnd)


def append_round(handles: Mapping[str, Any], rnd: int) -> None:
    for org, records in round_records(rnd):
        handles[org].metadata_publish(records)


def open_writers(path: Path, pki: Path) -> dict[str, EmbeddedLedger]:
    ids = identities(pki)
    return {o: EmbeddedLedger.open(path, ids[o]) for o in ("org1", "org2", "org3")}
