"""Run the benchmark app on each system, as real processes on loopback; collect the timings.

* fedchain: a fresh consortium (``fedchain.pki``), one aggregator process running
  :func:`fedchain.runtime.process.serve` and one process per organization running
  :func:`~fedchain.runtime.process.participate` (what ``fedchain-server`` / ``fedchain-client``
  run), over mTLS gRPC with the embedded SQLite ledger. Each process writes its runtime events
  as JSON lines stamped with the wall clock, so one timeline spans all processes.
* Flower: ``flower-superlink`` (TLS, certificate from ``fedchain.pki``) and one
  ``flower-supernode`` per organization, the app submitted with ``flwr run --stream``.

Both run ``benchmarks/flower_app`` unchanged; its ServerApp writes per-round timings.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_procs import ProcessGroup, free_port, wait_port
from cryptography.hazmat.primitives import serialization

from fedchain.config import LedgerSettings
from fedchain.pki import create_ca, identity_dir, init_consortium, issue_identity

HERE = Path(__file__).resolve().parent
APP_DIR = HERE / "flower_app"
VENV_BIN = Path(sys.executable).parent
#: Set by ``--profile DIR``: run fedchain's aggregator (the serial bottleneck) under py-spy,
#: its raw stacks written there (one sampler only, so the round is barely perturbed).
PROFILE_DIR: Path | None = None


@dataclass
class RunResult:
    """What one system produced for one model size."""

    system: str
    params: int
    timings: dict[str, Any]
    server_events: list[dict[str, Any]] = field(default_factory=list)
    client_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    load: float = 0.0  # 1-minute load average when the run started (the machine is shared)
    floor: dict[str, float] | None = None  # the data plane alone, same bytes (round_floor)


# -- worker side (runs inside the child processes) ----------------------------------------


def _emitter(who: str) -> Any:
    lock = threading.Lock()

    def emit(name: str, data: dict[str, Any]) -> None:
        stamp = {"wall": time.time(), "cpu": time.process_time()}  # CPU: all threads
        line = json.dumps({"event": name, "who": who, **stamp, **data}, default=str)
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    return emit


def worker(role: str, spec_path: Path) -> int:
    """Child-process entry: the aggregator (``server``) or one organization (``client``)."""
    from fedchain.runtime.process import ClientOptions, ServerOptions, participate, serve

    spec = json.loads(spec_path.read_text())
    ledger = LedgerSettings(backend="embedded", path=Path(spec["ledger"]))
    if role == "server":
        options = ServerOptions(
            pki=Path(spec["pki"]), identity=Path(spec["identity"]), ledger=ledger,
            app=str(APP_DIR), address="127.0.0.1:0", rounds=spec["rounds"],
            models_dir=Path(spec["models"]), deadline_s=spec["deadline"],
            min_nodes=spec["orgs"], min_replies=spec["orgs"], run_config=spec["run_config"],
        )  # fmt: skip
        serve(options, _emitter("aggregator"))
    else:
        participate(
            ClientOptions(
                pki=Path(spec["pki"]),
                identity=Path(spec["identity"]),
                ledger=ledger,
                app=str(APP_DIR),
                server=spec["server"],
                exit_when_done=True,
            ),
            _emitter(spec["org"]),
        )
    return 0


# -- orchestration ------------------------------------------------------------------------


def _spawn_worker(
    group: ProcessGroup,
    role: str,
    spec: dict[str, Any],
    folder: Path,
    name: str,
) -> subprocess.Popen[Any]:
    spec_path = folder / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [
        sys.executable,
        str(HERE / "round_overhead.py"),
        "--worker",
        role,
        "--spec",
        str(spec_path),
    ]
    if PROFILE_DIR is not None and role == "server":  # sample it with py-spy (raw stacks)
        cmd = [
            str(VENV_BIN / "py-spy"),
            "record",
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(PROFILE_DIR / f"{folder.name}-{name}.txt"),
            "--",
            *cmd,
        ]
    return group.start(cmd, log=folder / f"{name}.log", capture=True)


def _drain(proc: subprocess.Popen[Any], sink: list[dict[str, Any]]) -> threading.Thread:
    def run() -> None:
        for line in proc.stdout or ():
            if line.startswith("{"):
                sink.append(json.loads(line))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _await_listening(
    events: list[dict[str, Any]], proc: subprocess.Popen[Any], timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in list(events):
            if event["event"] == "listening":
                return str(event["address"])
        if proc.poll() is not None:
            raise RuntimeError(f"the aggregator exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError("the aggregator did not start listening")


def run_fedchain(workdir: Path, params: int, orgs: int, rounds: int, timeout: float) -> RunResult:
    """One fedchain run of ``rounds`` rounds at ``params`` parameters with ``orgs`` orgs."""
    folder = workdir / f"fedchain-{params}"
    folder.mkdir(parents=True)
    names = [f"org{i}" for i in range(1, orgs + 1)]
    pki = folder / "pki"
    init_consortium(pki, consortium="bench", orgs=names, aggregator=names[0])
    timings = folder / "timings.json"
    common = {"pki": str(pki), "ledger": str(folder / "ledger.sqlite"), "orgs": orgs}
    server_spec = {
        **common, "identity": str(identity_dir(pki, names[0], "aggregator")), "rounds": rounds,
        "models": str(folder / "models"), "deadline": timeout,
        "run_config": {"params": params, "min-nodes": orgs, "timings-file": str(timings)},
    }  # fmt: skip
    group = ProcessGroup()
    server_events: list[dict[str, Any]] = []
    client_events: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        server = _spawn_worker(group, "server", server_spec, folder, "aggregator")
        drains = [_drain(server, server_events)]
        address = _await_listening(server_events, server, 60)
        for name in names:
            spec = {
                **common,
                "identity": str(identity_dir(pki, name, "client1")),
                "org": name,
                "server": address,
            }
            drains.append(
                _drain(_spawn_worker(group, "client", spec, folder, name), client_events[name])
            )
        if server.wait(timeout) != 0:
            raise RuntimeError(f"the aggregator failed; see {folder / 'aggregator.log'}")
        for proc in group.procs[1:]:
            proc.wait(30)
        for thread in drains:
            thread.join(10)
    finally:
        group.stop_all()
    return RunResult(
        "fedchain", params, json.loads(timings.read_text()), server_events, client_events
    )


class FlowerDeployment:
    """SuperLink + SuperNodes on loopback with TLS; :meth:`run` submits the app once."""

    def __init__(self, workdir: Path, orgs: int) -> None:
        self.folder = workdir / "flower"
        self.folder.mkdir(parents=True)
        self.orgs = orgs
        self.group = ProcessGroup()
        self.port = free_port()
        self.env = {
            "FLWR_HOME": str(self.folder / "flwr-home"),
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def _certificates(self) -> tuple[Path, Path, Path]:
        now = datetime.now(UTC)
        ca, ca_key = create_ca("flower", now=now)
        server = issue_identity(ca, ca_key, org="flower", name="superlink", role="server", now=now)
        paths = (self.folder / "ca.pem", self.folder / "superlink.pem", self.folder / "key.pem")
        paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        paths[1].write_bytes(server.cert_pem)
        paths[2].write_bytes(server.key_pem())
        paths[2].chmod(0o600)
        return paths

    def start(self) -> None:
        """Start the SuperLink and the SuperNodes; write the CLI's connection config."""
        ca, cert, key = self._certificates()
        home = self.folder / "flwr-home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\n'
            f'address = "127.0.0.1:{self.port}"\nroot-certificates = "{ca}"\n'
        )
        link = self.group.start(
            [str(VENV_BIN / "flower-superlink"), "--ssl-certfile", str(cert), "--ssl-keyfile",
             str(key), "--ssl-ca-certfile", str(ca), "--port", str(self.port),
             "--disable-runtime-dependency-installation"],
            log=self.folder / "superlink.log", env=self.env, cwd=self.folder,
        )  # fmt: skip
        wait_port(self.port, 60, link)
        for i in range(self.orgs):
            self.group.start(
                [str(VENV_BIN / "flower-supernode"), "--superlink", f"127.0.0.1:{self.port}",
                 "--root-certificates", str(ca), "--port", str(free_port()),
                 "--node-config", f"partition-id={i} num-partitions={self.orgs}"],
                log=self.folder / f"supernode{i}.log", env=self.env, cwd=self.folder,
            )  # fmt: skip

    def run(self, params: int, rounds: int, timeout: float) -> RunResult:
        """Submit the app with ``flwr run --stream`` and wait for its timings."""
        timings = self.folder / f"timings-{params}.json"
        config = f'params={params} rounds={rounds} min-nodes={self.orgs} timings-file="{timings}"'
        cmd = [
            str(VENV_BIN / "flwr"),
            "run",
            str(APP_DIR),
            "bench",
            "--run-config",
            config,
            "--stream",
        ]
        log = self.folder / f"flwr-run-{params}.log"
        proc = self.group.start(cmd, log=log, env=self.env, cwd=self.folder)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"flwr run took over {timeout:.0f} s; see {log}") from exc
        deadline = time.monotonic() + 30
        while not timings.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not timings.exists():
            raise RuntimeError(f"the Flower run wrote no timings ({shlex.join(cmd)}); see {log}")
        return RunResult("flower", params, json.loads(timings.read_text()))

    def stop(self) -> None:
        """Stop the SuperLink, the SuperNodes and everything they started."""
        self.group.stop_all()
