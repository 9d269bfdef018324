"""Child processes for the benchmarks: start them, and stop every one of them by PID.

Flower's SuperLink and SuperNodes start helpers of their own (``flower-superexec``, detached
into a new session, and one ``flwr-clientapp`` per message), so stopping a process also stops
its descendants, found through ``/proc`` before anything is signalled. Only processes this
harness started, or their descendants, are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float, alive: subprocess.Popen[Any]) -> None:
    """Until something accepts TCP connections on ``port`` (a server's start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            raise RuntimeError(f"process {alive.pid} exited with {alive.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pids: Sequence[int]) -> list[int]:
    """Every live descendant of ``pids`` (children first found, breadth first)."""
    children, found, todo = _children_map(), [], list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class ProcessGroup:
    """The processes one benchmark started; :meth:`stop_all` ends them and their descendants."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []
        self._files: list[IO[Any]] = []

    def start(
        self,
        cmd: Sequence[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = False,
    ) -> subprocess.Popen[Any]:
        """Start ``cmd``; stderr (and stdout unless ``capture``) go to ``log``."""
        out = log.open("w")
        self._files.append(out)
        proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE if capture else out,
            stderr=out,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every process and descendant, SIGKILL what is left after ``grace``."""
        live = [p for p in self.procs if p.poll() is None]
        family = descendants([p.pid for p in self.procs])
        _signal([p.pid for p in live], signal.SIGTERM)
        _signal(family, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in live:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal([pid for pid in family if _alive(pid)], signal.SIGKILL)
        for out in self._files:
            out.close()
        self.procs.clear()
        self._files.clear()
