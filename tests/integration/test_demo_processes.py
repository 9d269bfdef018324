"""How ``fedchain demo`` runs its processes: real child processes, real pipes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.runtime_support import STOPPED
from tests.process_support import running, until

from fedchain.runtime.demo import _spawn

CHATTY = """\
import sys
line = "x" * 1023 + "\\n"
for _ in range(512):  # 512 KiB, far past a pipe's 64 KiB buffer
    sys.stdout.write(line)
sys.stdout.flush()
"""


def test_a_process_whose_events_the_demo_does_not_read_never_blocks_on_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each client prints ~620 bytes of JSON a round; with an unread stdout pipe a client
    blocked once 64 KiB had piled up (round ~105) and the demo stalled. Its events now go to
    its log, so however much it prints, it runs to the end."""
    (tmp_path / "chatty.py").write_text(CHATTY)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    log = tmp_path / "org1.log"
    proc = _spawn("chatty", [], log, capture=False)
    assert proc.stdout is None
    assert proc.wait(timeout=60) == 0
    assert log.stat().st_size == 512 * 1024


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.usefixtures("stop_signals_at_default")
@pytest.mark.parametrize("signum", list(STOPPED), ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_to_the_demo_stops_its_processes_too(tmp_path: Path, signum: int) -> None:
    """``kill <demo pid>`` used to leave the three fedchain-client processes running (ppid 1),
    retrying for minutes, and ``kill -HUP`` (a closed terminal) still did. Each stop signal
    now unwinds like Ctrl-C: the demo stops its children, then exits with 128 + the signal."""
    # The most rounds the demo takes: no run ends before the signal.
    demo = subprocess.Popen(
        [sys.executable, "-m", "fedchain.cli.main", "demo", "--rounds", "1000",
         "--workdir", str(tmp_path / "demo"), "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert until(lambda: len(_children(demo.pid)) >= 4, 120), "server + 3 clients"
        children = _children(demo.pid)
        demo.send_signal(signum)
        _, err = demo.communicate(timeout=60)
        code, line = STOPPED[signum]
        assert demo.returncode == code
        assert err.strip().splitlines()[-1] == line
        assert until(lambda: not any(running(pid) for pid in children), 30), [
            pid for pid in children if running(pid)
        ]
    finally:
        if demo.poll() is None:
            demo.kill()


@pytest.mark.slow
def test_a_demo_killed_with_sigkill_leaves_no_process_behind(tmp_path: Path) -> None:
    """``kill -9 <demo pid>`` (or a test harness's ``Popen.kill``) runs no clean-up in the demo;
    its three clients lived on (ppid 1), retrying for ever. Each child now stops with it."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "fedchain.cli.main", "demo", "--rounds", "1000",
         "--workdir", str(tmp_path / "demo"), "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    children: list[int] = []
    try:
        assert until(lambda: len(_children(demo.pid)) >= 4, 120), "server + 3 clients"
        children = _children(demo.pid)
        demo.kill()
        assert demo.wait(timeout=60) == -signal.SIGKILL
        assert until(lambda: not any(running(pid) for pid in children), 60), [
            pid for pid in children if running(pid)
        ]
    finally:
        if demo.poll() is None:
            demo.kill()
        for pid in children:
            if running(pid):  # a failure here must not leak processes into the rest of the run
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(960)  # above the demo's own 900 s limit (pytest's default is 300 s)
def test_a_demo_of_300_rounds_runs_every_round_and_its_audit_passes(tmp_path: Path) -> None:
    """``demo --rounds 150`` once hung at round ~105 (the clients' unread stdout pipes filled);
    a long run of the built-in app (a small linear model on the digits) must reach its end."""
    done = subprocess.run(
        [sys.executable, "-m", "fedchain.cli.main", "demo", "--rounds", "300",
         "--workdir", str(tmp_path / "demo"), "--json"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["event"] == "result"
    assert result["audit_ok"], result["problems"]
    assert [row["round"] for row in result["rounds"]] == list(range(1, 301))
    assert all(len(row["participants"]) == 3 for row in result["rounds"])
    assert result["rounds"][-1]["model_sha256"]
