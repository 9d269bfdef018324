"""The test session builds the chaincode itself where npm is installed, so the README's plain
``pytest`` on a fresh clone runs the chaincode tests instead of skipping them (67 skipped)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.fabric_support.chaincode import CHAINCODE_DIR, build_if_needed, unavailable_reason

pytestmark = pytest.mark.slow


NO_NPM = shutil.which("npm") is None or shutil.which("node") is None


@pytest.mark.skipif(NO_NPM, reason="node and npm are not installed (install Node.js 18+, npm)")
def test_a_fresh_copy_of_the_chaincode_is_built_once(tmp_path: Path) -> None:
    fresh = tmp_path / "chaincode"
    unbuilt = shutil.ignore_patterns("node_modules", "dist", "build-test")
    shutil.copytree(CHAINCODE_DIR, fresh, ignore=unbuilt)
    assert "run `npm ci` first" in (unavailable_reason(fresh) or "")
    assert build_if_needed(fresh) is None
    assert unavailable_reason(fresh) is None
    built = (fresh / "dist" / "index.js").stat().st_mtime_ns
    assert build_if_needed(fresh) is None  # already built: nothing to do
    assert (fresh / "dist" / "index.js").stat().st_mtime_ns == built
