"""shellcheck on every shell script of the repository: each ``*.sh`` and each file whose first
line is a ``sh``/``bash`` shebang (``.ci/run``, the ccaas builder's ``bin/*``), found with
``git ls-files`` so a new script is checked without being listed here.

Without shellcheck the test skips saying how to install it; ``FEDCHAIN_REQUIRE_SHELLCHECK=1``
(``.ci/run`` sets it after installing shellcheck) makes that a failure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHEBANG = re.compile(rb"^#!\s*(/usr/bin/env\s+)?(/bin/|/usr/bin/)?(ba|da)?sh\b")


def shell_scripts(root: Path = ROOT) -> list[Path]:
    """The repository's tracked shell scripts (every file under ``root`` when not in git)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                            check=False)  # fmt: skip
    if listed.returncode == 0:
        files = [root / name for name in listed.stdout.decode().split("\0") if name]
    else:
        skip = {".git", "node_modules", ".venv", "venv", "__pycache__"}
        files = [p for p in root.rglob("*") if not skip & set(p.relative_to(root).parts)]
    return sorted(p for p in files if p.is_file() and _is_shell(p))


def _is_shell(path: Path) -> bool:
    if path.suffix == ".sh":
        return True
    with path.open("rb") as fh:
        return bool(SHEBANG.match(fh.readline(128)))


def test_the_scripts_found_include_every_kind() -> None:
    found = {str(p.relative_to(ROOT)) for p in shell_scripts()}
    for expected in (".ci/run", "fabric-network/network.sh", "fabric-network/scripts/nodes.sh",
                     "fabric-network/builders/ccaas/bin/build", "docker/up.sh",
                     "deploy/run.sh", "deploy/scripts/lib.sh"):  # fmt: skip
        assert expected in found
    assert not any(name.endswith((".py", ".ts", ".md")) for name in found)


def test_shellcheck_is_clean_on_every_shell_script() -> None:
    if shutil.which("shellcheck") is None:
        reason = ("shellcheck is not installed (apt-get install shellcheck, or see "
                  "https://github.com/koalaman/shellcheck#installing)")  # fmt: skip
        if os.environ.get("FEDCHAIN_REQUIRE_SHELLCHECK") == "1":
            pytest.fail(f"FEDCHAIN_REQUIRE_SHELLCHECK=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    scripts = [str(p.relative_to(ROOT)) for p in shell_scripts()]
    # -x follows `source`; SCRIPTDIR resolves a sourced path against the sourcing script.
    result = subprocess.run(["shellcheck", "-x", "--source-path=SCRIPTDIR", *scripts], cwd=ROOT,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
