"""Progress output for long commands: a rich progress bar for people, JSON lines for scripts."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["EventSink"]


class EventSink:
    """Receives runtime events ``(name, data)``; shows them as a bar or as JSON lines.

    ``rounds`` sizes the bar (None: unknown until a ``run`` event says); ``label`` prefixes the
    description (the organization's name). A ``state`` event (a long-running process's change
    of state) is printed as its own line above the bar. Thread-safe: the runtimes emit from
    their own threads.
    """

    def __init__(
        self, *, as_json: bool, rounds: int | None, label: str, console: Console | None = None
    ) -> None:
        self.as_json = as_json
        self.label = label
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._round_start = self._start
        self._round: int | None = None  # the newest round an event named
        self._participants: set[str] = set()
        self._progress: Progress | None = None
        self._bar: Any = None
        self._started = False
        if not as_json:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console or Console(stderr=True),
                transient=False,
            )
            self._bar = self._progress.add_task(f"{label}: waiting", total=rounds)

    def __enter__(self) -> EventSink:
        return self  # the bar starts with the first event: an early error stays one clean line

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None and self._started:
            self._progress.stop()

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        with self._lock:
            if self.as_json:
                event = {
                    "event": name,
                    "who": self.label,
                    "t": round(time.monotonic() - self._start, 4),
                    **data,
                }
                sys.stdout.write(json.dumps(event, default=str) + "\n")
                sys.stdout.flush()
                return
            self._human(name, data)

    def _human(self, name: str, data: dict[str, Any]) -> None:
        if self._progress is None:
            return
        if not self._started:
            self._progress.start()
            self._started = True
        if name == "state":
            self._state(self._progress, data)
            return
        if name == "run" and isinstance(data.get("rounds"), int):
            self._progress.update(self._bar, total=data["rounds"], completed=0)
        rnd = data.get("round")
        if isinstance(rnd, int) and not isinstance(rnd, bool):
            self._round = rnd  # events of the whole run (consortium, run...) keep the round
        if name == "task":
            self._participants.clear()
        if name in {"announced", "received"} and "org" in data:
            self._participants.add(str(data["org"]))
        phase = _PHASES.get(name, name)
        if name == "task":
            phase = f"{data.get('type', 'task')} sent"
        if self._round is None:  # before the first round: no round to show yet
            description = f"{self.label}: {phase}"
        else:
            who = f" · {len(self._participants)} orgs" if self._participants else ""
            took = f" · {time.monotonic() - self._round_start:.2f}s"
            description = f"{self.label}: round {self._round} · {phase}{who}{took}"
        self._progress.update(self._bar, description=description)
        if name == "closed" and self._round is not None:
            self._progress.update(self._bar, completed=self._round)
            self._round_start = time.monotonic()

    def _state(self, progress: Progress, data: dict[str, Any]) -> None:
        """Print the change as a line; a finished run fills the bar (never left at 0/N)."""
        line = f"{self.label}: {data.get('message', data.get('state'))}"
        progress.console.print(line, soft_wrap=True, markup=False, highlight=False)
        progress.update(self._bar, description=f"{self.label}: {data.get('state')}")
        if data.get("state") in {"finished", "idle"}:
            bar = next(task for task in progress.tasks if task.id == self._bar)
            done = bar.total if bar.total is not None else bar.completed
            progress.update(self._bar, total=done, completed=done)


#: How each event reads on the progress line; an event not listed shows its own name.
_PHASES = {
    "consortium": "starting the organizations",
    "listening": "listening",
    "run": "run started",
    "announced": "updates announced",
    "selected": "selected",
    "received": "receiving",
    "closed": "closed",
    "uploaded": "uploaded",
    "error": "error",
    "audited": "ledger checked",
}
