"""Process checks the tests share: is a PID still running, and a bounded wait for a condition.

Linux's /proc is read directly: a zombie (state ``Z``) has finished and only awaits its reaper,
so it counts as gone, which ``os.kill(pid, 0)`` cannot tell.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def running(pid: int) -> bool:
    """A live process (not a zombie) has this PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def until(condition: Callable[[], bool], seconds: float, poll: float = 0.05) -> bool:
    """Whether ``condition`` holds within ``seconds`` (checked once more at the deadline)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()
