"""Bad places and plain questions get one clear line from the real console scripts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.test_cli_pki import assert_one_line_error, run

from fedchain.cli._common import package_version

BIN = Path(sys.executable).parent
#: A folder even root cannot create entries in (sysfs).
UNWRITABLE = Path("/sys")


def test_demo_with_a_file_as_its_folder_says_so(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine")
    result = run("demo", "--workdir", afile, "--rounds", "1")
    assert_one_line_error(result, str(afile), "is a file, not a folder")
    assert afile.read_text() == "mine"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs sysfs for an unwritable folder")
def test_demo_and_ledger_init_where_nothing_can_be_written(consortium_dir: Path) -> None:
    result = run("demo", "--workdir", UNWRITABLE / "fedchain-demo", "--rounds", "1")
    assert_one_line_error(result, f"cannot use {UNWRITABLE}", "choose another --workdir")
    ledger = UNWRITABLE / "ledger.sqlite"
    result = run("ledger", "init", "--ledger", ledger, "--pki", consortium_dir)
    assert_one_line_error(result, "cannot create", str(ledger))
    assert ".creating" not in result.stderr  # no temporary file name leaks out


@pytest.mark.parametrize("script", ["fedchain", "fedchain-server", "fedchain-client"])
def test_every_console_script_tells_its_version(script: str) -> None:
    result = subprocess.run([str(BIN / script), "--version"], capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"fedchain {package_version()}"
    assert package_version() != "unknown"


def test_a_port_in_use_is_one_line_without_grpc_s_own_log(
    consortium_dir: Path, tmp_path: Path
) -> None:
    """gRPC's C core printed ``E1205 ... add_port.cc ...`` to stderr before our message. (The
    user's environment, not this process's: importing Flower here sets GRPC_VERBOSITY.)"""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = subprocess.run(
            [str(BIN / "fedchain-server"), "--pki", str(consortium_dir), "--address", address,
             "--ledger", str(tmp_path / "l.sqlite"), "--rounds", "1"],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
    assert_one_line_error(result, f"cannot bind the data plane to {address}")
