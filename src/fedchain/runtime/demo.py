"""``fedchain demo``: a whole consortium on one machine, as separate processes.

The aggregator and every organization started as their own ``fedchain-server`` /
``fedchain-client`` processes on loopback over real mTLS, the built-in digits app for N rounds,
then the ledger check, the final accuracy next to a centrally trained baseline, and a plot. The
consortium and ledger are a new PKI and embedded ledger file in the working folder, or a running
Fabric network's organizations (``demo_ledgers``). Plain functions; the CLI only renders.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from fedchain import signals
from fedchain.errors import ConfigError, FedchainError, InternalError
from fedchain.examples.digits_data import holdout
from fedchain.examples.digits_model import evaluate, init_params, train
from fedchain.runtime.arrays import load_model
from fedchain.runtime.demo_ledgers import DEFAULT_NETWORK, LedgerCheck, embedded_plan, fabric_plan

__all__ = ["DemoResult", "run_demo"]

MARKER = ".fedchain-demo"
LOCAL_EPOCHS = 5  # the built-in app's default: the baseline sees as many passes over the data
BUILT_IN_ROUNDS = 10
SECURE_APP = "fedchain.examples.digits:"
Events = Callable[[str, dict[str, Any]], None]


@dataclass
class DemoResult:
    """What the demo produced, for the CLI to print."""

    workdir: Path
    ledger: str  # the ledger file, or which Fabric channel
    run: str
    check: LedgerCheck
    accuracy: float | None  # the built-in app's only (a user's app has its own evaluation)
    baseline: float | None
    plot: Path | None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    explorer: str = ""  # the command that opens the explorer on this ledger


def prepare_workdir(workdir: Path) -> None:
    """Use ``workdir`` afresh: only an empty folder or an earlier demo's is (re)used."""
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"{workdir} is a file, not a folder: choose another --workdir")
    try:
        if workdir.exists():
            if not (workdir / MARKER).exists() and any(workdir.iterdir()):
                raise ConfigError(f"{workdir} is not empty and not a fedchain demo folder")
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        (workdir / MARKER).write_text("created by fedchain demo; deleted by the next demo run\n")
    except OSError as exc:
        raise ConfigError(
            f"cannot use {workdir} as the demo's folder: {exc.strerror or exc}; "
            "choose another --workdir"
        ) from exc


def _spawn(module: str, args: list[str], log: Path, *, capture: bool) -> subprocess.Popen[str]:
    """Start ``module`` with ``--json``; its stderr goes to ``log``.

    Only a process whose events the demo reads (``capture``: the aggregator) gets a stdout
    pipe. Every other process writes its JSON events to its log too: a pipe nobody reads fills
    up (64 KiB) and blocks the writer mid-run, which stalled long demos.
    """
    # Each child stops when the demo ends, even by SIGKILL, which skips our clean-up (signals).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", signals.PARENT_ENV: str(os.getpid())}
    with log.open("w") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # within signals.critical() (see _start)
            [sys.executable, "-m", module, *args, "--json"],
            stdout=subprocess.PIPE if capture else sink,
            stderr=sink,
            text=True,
            env=env,
        )


def _start(
    procs: list[subprocess.Popen[str]], module: str, args: list[str], log: Path, *, capture: bool
) -> subprocess.Popen[str]:
    """Spawn and record a process as one step: a SIGTERM in between would orphan it."""
    with signals.critical():
        proc = _spawn(module, args, log, capture=capture)
        procs.append(proc)
    return proc


@contextmanager
def _processes() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        with signals.critical():  # a second SIGTERM must not cut the clean-up short
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def run_demo(
    workdir: Path,
    *,
    rounds: int | None = None,
    orgs: int | None = None,
    secure: bool = False,
    events: Events | None = None,
    ledger: str = "embedded",
    network: Path = DEFAULT_NETWORK,
    app: Path | None = None,
) -> DemoResult:
    """Run the demo end to end and return its results (raises FedchainError on failure).

    ``ledger="embedded"``: a new consortium of ``orgs`` (default 3) organizations and a ledger
    file in ``workdir``. ``ledger="fabric"``: the organizations of the running Fabric network
    whose fedchain.toml files are in ``network``; ``orgs`` is refused there (ConfigError).
    ``app``: a Flower app directory to run instead of the built-in app (``rounds``, when
    given, sets its ``num-server-rounds``; it has no accuracy of the demo's to report);
    ``secure`` then wraps its strategy in secure aggregation (``fedchain-server --secure``).
    """
    emit = events or (lambda _n, _d: None)
    if app is not None and not (app / "pyproject.toml").is_file():
        raise ConfigError(f"--app {app}: not a Flower app directory (no pyproject.toml)")
    if app is None and rounds is None:
        rounds = BUILT_IN_ROUNDS
    if ledger == "fabric" and orgs is not None:
        raise ConfigError(
            "--orgs applies to the embedded ledger; on Fabric the network's organizations "
            f"take part (one fedchain.toml each in {network})"
        )
    if ledger == "fabric":
        plan = fabric_plan(network)  # checked before the working folder is replaced
        prepare_workdir(workdir)
    elif ledger == "embedded":
        prepare_workdir(workdir)
        plan = embedded_plan(workdir, orgs or 3)
    else:
        raise ConfigError(f"the demo runs on the 'embedded' or 'fabric' ledger, not {ledger!r}")
    models, logs = workdir / "models", workdir / "logs"
    logs.mkdir()
    emit("consortium", {"ledger": plan.ledger, "orgs": plan.orgs})
    server_args = [
        *plan.server_args, "--models", str(models), "--min-nodes", str(len(plan.orgs)),
        "--deadline", "60", *(["--rounds", str(rounds)] if rounds is not None else []),
    ]  # fmt: skip
    apps = [] if app is None else ["--app", str(app.resolve())]
    if secure:  # an app directory's strategy is wrapped; the built-in app has a secure twin
        server_args += ["--secure"] if app else ["--app", SECURE_APP + "secure_server_app"]
    server_args += apps
    with _processes() as procs:
        server = _start(procs, "fedchain.cli.server", server_args, logs / "aggregator.log",
                        capture=True)  # fmt: skip
        address, run = _await_listening(server, logs / "aggregator.log")
        for org, args in plan.client_args.items():
            client_args = [*args, "--server", address, "--exit-when-done", *apps]
            if secure:
                client_args += ["--secure"] if app else ["--app", SECURE_APP + "secure_client_app"]
            _start(procs, "fedchain.cli.client", client_args, logs / f"{org}.log", capture=False)
        run = _follow(server, emit) or run
        if server.wait() != 0:
            raise FedchainError(f"the aggregator failed; see {logs / 'aggregator.log'}")
    check = plan.check(models, run)
    emit("audited", {"entries": check.entries, "ok": check.ok})
    if app is not None:
        table = _table(check)
        result = DemoResult(workdir, plan.ledger, run, check, None, None,
                            _plot_of(workdir, table), table)  # fmt: skip
    else:
        result = _finish(workdir, plan.ledger, models, run, rounds or BUILT_IN_ROUNDS, check)
    result.explorer = shlex.join(["fedchain", "explorer", *plan.explorer, "--models", str(models)])
    return result


def _lines(proc: subprocess.Popen[str]) -> IO[str]:
    if proc.stdout is None:
        raise InternalError("the aggregator's output is not captured")
    return proc.stdout


def _await_listening(server: subprocess.Popen[str], log: Path) -> tuple[str, str]:
    for line in _lines(server):
        event = json.loads(line)
        if event.get("event") == "listening":
            return str(event["address"]), str(event.get("run", ""))
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=10)  # its output has ended: let it finish writing its log
    raise FedchainError(f"the aggregator exited before listening: {_last_error(log)} (log: {log})")


def _last_error(log: Path) -> str:
    """The one-line ``error: ...`` a fedchain command prints last, without its prefix."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    found = next((line for line in reversed(lines) if line.startswith("error: ")), None)
    return found.removeprefix("error: ") if found else "it gave no reason"


def _follow(server: subprocess.Popen[str], emit: Events) -> str:
    run = ""
    for line in _lines(server):
        event = json.loads(line)
        name = event.pop("event")
        run = str(event.get("run", run))
        emit(name, event)
    return run


def _finish(
    workdir: Path, ledger: str, models: Path, run: str, rounds: int, check: LedgerCheck
) -> DemoResult:
    final = next((r.model_sha256 for r in reversed(check.rounds) if r.model_sha256), None)
    train_set, test_set = holdout(0)
    accuracy = 0.0
    if final is not None:
        params = load_model(models, final).to_numpy_ndarrays()
        accuracy = evaluate(params, test_set)[1]
    baseline_params, _ = train(
        init_params(0),
        train_set,
        epochs=LOCAL_EPOCHS * rounds,
        lr=0.1,
        batch=32,
        rng=np.random.default_rng(0),
    )
    baseline = evaluate(baseline_params, test_set)[1]
    table = _table(check)
    plot = _plot_of(workdir, table, accuracy, baseline)
    return DemoResult(workdir, ledger, run, check, accuracy, baseline, plot, table)


def _table(check: LedgerCheck) -> list[dict[str, Any]]:
    """The rounds of the run as the ledger recorded them."""
    return [
        {
            "round": r.round,
            "participants": r.participants,
            "num_examples": r.num_examples,
            "dropouts": r.dropouts,
            "model_sha256": r.model_sha256,
            "masked": r.masked,
            **r.metrics,
        }
        for r in check.rounds
    ]


def _plot_of(
    workdir: Path, table: list[dict[str, Any]], accuracy: float | None = None,
    baseline: float | None = None,
) -> Path | None:  # fmt: skip
    return _plot(workdir / "training.png", table, accuracy, baseline)


def _plot(
    path: Path, table: list[dict[str, Any]], accuracy: float | None, baseline: float | None
) -> Path | None:
    """Save :func:`figure` as ``path`` (None when no round was evaluated)."""
    fig = figure(table, accuracy, baseline)
    if fig is None:
        return None
    import matplotlib.pyplot as plt  # after figure() chose the Agg backend

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure(
    table: list[dict[str, Any]], accuracy: float | None, baseline: float | None
) -> Any:
    """Accuracy and loss per round (federated evaluation, from the ledger's close records),
    with the two numbers the demo's headline prints for the built-in app: the final model's
    accuracy on the hold-out set (a point at the last round) and the centrally trained
    baseline (a line); an app of the user's has neither."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rounds = [row["round"] for row in table if "eval_acc" in row]
    if not rounds:
        return None
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    acc_ax.plot(rounds, [row["eval_acc"] for row in table if "eval_acc" in row], marker="o",
                label="federated evaluation")  # fmt: skip
    if accuracy is not None:
        acc_ax.plot([rounds[-1]], [accuracy], marker="*", markersize=12, linestyle="none",
                    label=f"final model, hold-out set ({accuracy:.3f})")  # fmt: skip
    if baseline is not None:
        acc_ax.axhline(baseline, linestyle="--", color="grey",
                       label=f"central baseline, hold-out set ({baseline:.3f})")  # fmt: skip
    acc_ax.set(title="accuracy", xlabel="round", ylim=(0, 1))
    acc_ax.legend(loc="lower right", fontsize="small")
    for key, label in (("eval_loss", "evaluation"), ("train_loss", "training")):
        values = [row[key] for row in table if key in row]
        if values:
            loss_ax.plot(rounds[: len(values)], values, marker="o", label=label)
    loss_ax.set(title="loss", xlabel="round")
    loss_ax.legend()
    for ax in (acc_ax, loss_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
