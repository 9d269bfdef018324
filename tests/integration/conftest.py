"""Fixtures of the integration tests: runtime processes (``runtime_support``) and the browser
of the explorer tests (``explorer_support``)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.explorer_support import chromium
from tests.integration.runtime_support import Deployment


@pytest.fixture
def deployment(consortium_dir: Path, tmp_path: Path) -> Iterator[Deployment]:
    """The session consortium (read-only), a fresh ledger/models folder; processes killed after."""
    dep = Deployment(pki=consortium_dir, workdir=tmp_path)
    try:
        yield dep
    finally:
        dep.stop_all()


@pytest.fixture
def stop_signals_at_default() -> Iterator[None]:
    """Processes started in the test get SIGHUP, SIGINT and SIGTERM at their default, as from
    a terminal. An ignored signal is inherited across exec, and fedchain keeps it ignored (as
    `nohup` asks): a suite run under `nohup` would otherwise test a demo that cannot hang up."""
    ignored = [s for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)
               if signal.getsignal(s) is signal.SIG_IGN]  # fmt: skip
    for signum in ignored:
        signal.signal(signum, signal.SIG_DFL)
    try:
        yield
    finally:
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's, see ``explorer_support.chromium``) for the session."""
    path = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()
