"""What a user sees on the Fabric path when something is missing, as the real commands print it.

The fedchain.toml files are the ones ``fabric-network/network.sh crypto`` / ``toml`` write for a
local network; no network runs. Without the ``[fabric]`` extra (``without_fabric_extra`` on
``PYTHONPATH``: ``fabric_protos`` cannot be imported, exactly as after a plain ``pip install``)
every command says in one line which extra to install. Against a gateway endpoint where nothing
listens (a loopback port bound by the test and never listened on, so connections are refused)
every command says in one line, within seconds, that the gateway is unreachable and what to do.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.runtime_support import ROOT, WAIT, child_env

pytestmark = pytest.mark.slow

NETWORK_SH = ROOT / "fabric-network" / "network.sh"
BIN = Path(sys.executable).parent
WITHOUT_EXTRA = Path(__file__).parent / "without_fabric_extra"
FAST = 20.0  # seconds: the whole command, interpreter start included; the backoff alone is ~26 s
INSTALL_HINT = "pip install 'fedchain[fabric]'"


def network_sh(*args: str, work: Path) -> str:
    env = child_env(FEDCHAIN_FABRIC_WORK=str(work))
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # this interpreter's fedchain command
    result = subprocess.run([str(NETWORK_SH), *args], capture_output=True, text=True, env=env,
                            timeout=WAIT, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound here (nobody else can take it), never
    listened on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tomls(tmp_path_factory: pytest.TempPathFactory, closed_port: int) -> Path:
    """network.sh's fedchain.toml files (aggregator, org1..org3), every endpoint the closed port."""
    work = tmp_path_factory.mktemp("fabric") / "work"
    network_sh("crypto", work=work)
    folder = work / "fedchain"
    folder.mkdir()
    for org, role, name in [("org1", "server", "aggregator"), ("org1", "client", "org1"),
                            ("org2", "client", "org2"), ("org3", "client", "org3")]:  # fmt: skip
        text = network_sh("toml", org, role, work=work)
        text, count = re.subn(r'(?m)^endpoint = ".*"$', f'endpoint = "127.0.0.1:{closed_port}"',
                              text)  # fmt: skip
        assert count == 1, text
        (folder / f"{name}.toml").write_text(text)
    return folder


def commands(tomls: Path, workdir: Path) -> dict[str, list[str]]:
    """Every command that opens the Fabric ledger of a fedchain.toml, as a user types it."""
    return {
        "demo": ["fedchain", "demo", "--ledger", "fabric", "--network", str(tomls),
                 "--workdir", str(workdir), "--rounds", "1"],
        "server": ["fedchain-server", "--config", str(tomls / "aggregator.toml"),
                   "--address", "127.0.0.1:0"],
        "client": ["fedchain-client", "--config", str(tomls / "org2.toml"), "--exit-when-done"],
        "audit": ["fedchain", "audit", "--config", str(tomls / "org2.toml")],
        "ledger show": ["fedchain", "ledger", "show", "--config", str(tomls / "org3.toml")],
    }  # fmt: skip


def run(argv: list[str], **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a command (this interpreter's scripts); its result and how long it took."""
    started = time.monotonic()
    result = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                            env=child_env(**env), cwd=ROOT, timeout=WAIT)  # fmt: skip
    return result, time.monotonic() - started


def without_extra() -> dict[str, str]:
    path = os.pathsep.join([str(WITHOUT_EXTRA), child_env()["PYTHONPATH"]])
    return {"PYTHONPATH": path}


def test_the_stand_in_for_a_plain_install_hides_exactly_the_extra() -> None:
    probe = "import fabric_protos.gateway"
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env=child_env(**without_extra()), check=False)  # fmt: skip
    assert "ModuleNotFoundError: No module named 'fabric_protos'" in plain.stderr
    extra = subprocess.run([sys.executable, "-c", probe], env=child_env(), check=False)
    assert extra.returncode == 0  # the test environment has the extra: only the blocker hides it


@pytest.mark.parametrize("command", ["demo", "server", "client", "audit", "ledger show"])
def test_without_the_fabric_extra_every_command_names_it(
    command: str, tomls: Path, tmp_path: Path
) -> None:
    result, _ = run(commands(tomls, tmp_path / "demo")[command], **without_extra())
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert result.stderr.startswith("error: ")
    assert "[fabric] extra" in result.stderr
    assert INSTALL_HINT in result.stderr
    assert not (tmp_path / "demo").exists()  # the demo checked before preparing anything


@pytest.mark.parametrize("command", ["demo", "server", "client", "audit", "ledger show"])
def test_a_stopped_network_is_reported_in_seconds(
    command: str, tomls: Path, tmp_path: Path, closed_port: int
) -> None:
    result, took = run(commands(tomls, tmp_path / "demo")[command])
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # no retry warnings, no traceback
    gateway = f"127.0.0.1:{closed_port}"
    assert lines[0].startswith(f"error: the Fabric gateway at {gateway} is unreachable")
    assert "Connection refused" in lines[0]  # gRPC's own reason
    if command == "demo":
        assert "fabric-network/network.sh up" in lines[0]
        assert not (tmp_path / "demo").exists()  # checked before any process started
    else:
        assert "is the Fabric network up" in lines[0]
    assert took < FAST, f"{command} took {took:.1f}s"
