"""Real ``fedchain-server`` / ``fedchain-client`` processes for the runtime tests, and ways to
synchronise on them without sleeping: their ``--json`` events (stdout), their log lines
(stderr), their exit; then the records of the embedded ledger file they share.

Every process is started with the repository root on ``PYTHONPATH`` (so ``--app
tests.apps.misbehaving:<name>`` imports) and is killed by its own pid when the test ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fedchain.ledger import Query, Record
from fedchain.ledger.embedded import EmbeddedLedger

__all__ = [
    "ROOT", "STOPPED", "TINY_CLIENT", "TINY_SERVER", "WAIT", "Deployment", "Proc", "by_org",
    "child_env", "closes", "free_port", "records",
]  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]
#: The test apps (no data set to load, so processes start fast).
TINY_SERVER = "tests.apps.tiny:server_app"
TINY_CLIENT = "tests.apps.tiny:client_app"
#: Upper bound of any one wait: generous, the machine may be busy; a pass takes far less.
WAIT = 90.0
Event = dict[str, Any]
#: How each stop signal ends a fedchain command: its exit code and its one stderr line.
STOPPED = {
    signal.SIGTERM: (143, "error: terminated"),
    signal.SIGINT: (130, "error: interrupted"),
    signal.SIGHUP: (129, "error: hung up (SIGHUP)"),
}


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: repo root importable, unbuffered, wide tables, and
    Ray (Flower's simulation engine, in the conformance and example tests) on loopback only: by
    default its GCS, raylet and workers listen on every interface, at the default route's IP."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "COLUMNS": "250",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # fmt: skip
    env.pop("FORCE_COLOR", None)
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for commands that need a fixed one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    """One child process; its stdout JSON events and stderr lines are collected by threads."""

    def __init__(
        self, name: str, argv: list[str], log_dir: Path, env: dict[str, str], stdin: bool = False
    ) -> None:
        self.name = name
        self.argv = argv
        self.events: list[Event] = []
        self.err: list[str] = []
        self.started = time.monotonic()
        self._cond = threading.Condition()
        self._log = (log_dir / f"{name}.{int(time.monotonic() * 1000)}.log").open("w")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        )  # fmt: skip
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str] | None, is_stdout: bool) -> None:
        if stream is None:
            return
        for line in stream:
            with self._cond:
                self._log.write(("OUT " if is_stdout else "ERR ") + line)
                if not is_stdout:
                    self.err.append(line.rstrip("\n"))
                else:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        event = {"event": "text", "text": line.rstrip("\n")}
                    event["at"] = time.monotonic()
                    self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._log.flush()
            self._cond.notify_all()

    def _describe(self) -> str:
        tail = "\n".join(self.err[-15:])
        return f"{self.name} (rc={self.popen.poll()}): last stderr lines:\n{tail}"

    def wait_event(
        self, match: Callable[[Event], bool], timeout: float = WAIT, what: str = "event"
    ) -> Event:
        """The first event satisfying ``match`` (already seen or still to come)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((e for e in self.events if match(e)), None)
                if found is not None:
                    return found
                done = not any(r.is_alive() for r in self._readers)
                remaining = deadline - time.monotonic()
                if done or remaining <= 0:
                    raise AssertionError(f"no {what} from {self._describe()}")
                self._cond.wait(remaining)

    def event(self, name: str, timeout: float = WAIT, **fields: Any) -> Event:
        """The first event ``name`` whose fields include ``fields``."""
        return self.wait_event(
            lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items()),
            timeout,
            f"{name} {fields}",
        )

    def wait_err(self, text: str, timeout: float = WAIT, count: int = 1) -> str:
        """The ``count``-th stderr line containing ``text``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [line for line in self.err if text in line]
                if len(found) >= count:
                    return found[count - 1]
                done = not any(r.is_alive() for r in self._readers)
                remaining = deadline - time.monotonic()
                if done or remaining <= 0:
                    raise AssertionError(f"no stderr line with {text!r} from {self._describe()}")
                self._cond.wait(remaining)

    def finish(self, timeout: float = WAIT) -> int:
        """Wait for the process to exit by itself; its exit code."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit; {self._describe()}") from None
        for reader in self._readers:
            reader.join(timeout)
        self._log.close()
        return code

    def expect_exit(self, code: int = 0, timeout: float = WAIT) -> None:
        got = self.finish(timeout)
        assert got == code, f"exit {got} != {code}; {self._describe()}"

    def tell(self, line: str) -> None:
        """Write one line on the process's stdin (started with ``stdin=True``)."""
        if self.popen.stdin is None:
            raise AssertionError(f"{self.name} was started without a stdin pipe")
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def kill(self) -> None:
        """``kill -9`` (by pid) and reap."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(WAIT)

    def stderr_text(self) -> str:
        with self._cond:
            return "\n".join(self.err)


@dataclass
class Deployment:
    """A consortium folder, a ledger file, a models folder: how to start its processes."""

    pki: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    @property
    def ledger(self) -> Path:
        return self.workdir / "ledger.sqlite"

    @property
    def models(self) -> Path:
        return self.workdir / "models"

    def spawn(
        self, name: str, module: str, args: list[str], env: dict[str, str] | None,
        stdin: bool = False,
    ) -> Proc:  # fmt: skip
        argv = [sys.executable, "-m", module, *args]
        proc = Proc(name, argv, self.workdir, child_env(**self.env, **(env or {})), stdin)
        self.procs.append(proc)
        return proc

    def server_args(
        self, *, rounds: int, address: str = "127.0.0.1:0", deadline: float = 30,
        min_nodes: int = 3, app: str = TINY_SERVER, extra: tuple[str, ...] = (),
    ) -> list[str]:  # fmt: skip
        """The aggregator's command line (a fixed ``address`` makes restarts identical)."""
        return [
            "--pki", str(self.pki), "--ledger", str(self.ledger), "--models", str(self.models),
            "--address", address, "--rounds", str(rounds), "--deadline", str(deadline),
            "--min-nodes", str(min_nodes), "--app", app, "--json", *extra,
        ]  # fmt: skip

    def server(self, *, env: dict[str, str] | None = None, **kwargs: Any) -> Proc:
        """``fedchain-server`` (see :meth:`server_args`)."""
        return self.spawn("aggregator", "fedchain.cli.server", self.server_args(**kwargs), env)

    def client(
        self, org: str, address: str, *, app: str | None = TINY_CLIENT, name: str | None = None,
        env: dict[str, str] | None = None, extra: tuple[str, ...] = (), stdin: bool = False,
    ) -> Proc:  # fmt: skip
        """``fedchain-client --org ORG`` following the ledger, exiting when the run is done
        (``app=None``: the built-in digits app)."""
        args = ["--pki", str(self.pki), "--org", org, "--server", address,
                "--ledger", str(self.ledger), "--exit-when-done", "--json", *extra]  # fmt: skip
        if app is not None:
            args += ["--app", app]
        return self.spawn(name or org, "fedchain.cli.client", args, env, stdin)

    def start(
        self, apps: dict[str, str | None], **server: Any
    ) -> tuple[Proc, dict[str, Proc], str]:
        """The aggregator, then one client per org of ``apps`` (org -> app; None: the tiny
        client app)."""
        agg = self.server(**server)
        address = str(agg.event("listening")["address"])
        clients = {
            org: self.client(org, address, app=app or TINY_CLIENT) for org, app in apps.items()
        }
        return agg, clients, address

    def stop_all(self) -> None:
        """Kill (by pid) whatever is still running."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.kill()


def records(ledger: Path, **query: Any) -> list[Record]:
    """Records of the ledger file matching ``Query(**query)``, read-only."""
    with EmbeddedLedger.open(ledger) as led:
        return [e.record for e in led.metadata_get(Query(**query))]


def closes(ledger: Path, run: str | None = None) -> dict[int, Record]:
    """The ``close`` records of the ledger by round (a round closed twice would fail here)."""
    found: dict[int, Record] = {}
    for record in records(ledger, kind="close", run=run):
        assert record.round not in found, f"round {record.round} closed twice"
        found[int(record["round"])] = record
    return found


def by_org(items: list[Any], key: str) -> dict[str, Any]:
    """``[{"org": o, key: v}, ...]`` -> ``{o: v}`` (close.dropouts, close.rejected, ...)."""
    return {item["org"]: item[key] for item in items}
