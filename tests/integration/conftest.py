"""Fixtures of the integration tests: runtime processes (``runtime_support``) and the browser
of the explorer tests (``explorer_support``)."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's, see ``explorer_support.chromium``) for the session."""
    path = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()
