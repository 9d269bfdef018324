"""``fedchain demo`` reports an aggregator that exits before listening with that process's own
one-line error, not only a pointer to its log (a real child process, as the demo spawns it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedchain.errors import FedchainError
from fedchain.runtime.demo import _await_listening

FAILING = "import sys; print('warning: noise', file=sys.stderr); " \
          "print('error: the ledger is gone', file=sys.stderr); sys.exit(1)"  # fmt: skip


def test_the_aggregator_s_own_error_line_is_relayed(tmp_path: Path) -> None:
    log = tmp_path / "aggregator.log"
    with log.open("w") as stderr:
        server = subprocess.Popen([sys.executable, "-c", FAILING], stdout=subprocess.PIPE,
                                  stderr=stderr, text=True)  # fmt: skip
    with pytest.raises(FedchainError) as info:
        _await_listening(server, log)
    assert str(info.value) == (
        f"the aggregator exited before listening: the ledger is gone (log: {log})"
    )


def test_an_aggregator_that_says_nothing_still_points_at_its_log(tmp_path: Path) -> None:
    log = tmp_path / "aggregator.log"
    with log.open("w") as stderr:
        server = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"],
                                  stdout=subprocess.PIPE, stderr=stderr, text=True)  # fmt: skip
    with pytest.raises(FedchainError, match="it gave no reason"):
        _await_listening(server, log)
