"""How ``fedchain demo`` runs its processes: real child processes, real pipes."""

from __future__ import annotations

from pathlib import Path

import pytest

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
