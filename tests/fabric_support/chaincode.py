"""Run the built chaincode as a service: ``fabric-chaincode-node server`` on a loopback port.

The chaincode must be built (``npm ci && npm run build`` in ``chaincode/``). Where ``node`` and
``npm`` are installed, :func:`build_if_needed` does that once for the test session (so the
README's ``pytest`` runs these tests on a fresh clone); ``.ci/run`` builds it beforehand.
``FEDCHAIN_CHAINCODE_DIR`` may point at another copy.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import grpc

CHAINCODE_DIR = Path(
    os.environ.get("FEDCHAIN_CHAINCODE_DIR") or Path(__file__).parents[2] / "chaincode"
)
CHAINCODE_ID = "fedchain:ci"


def _cli(directory: Path = CHAINCODE_DIR) -> Path:
    return directory / "node_modules" / ".bin" / "fabric-chaincode-node"


def unavailable_reason(directory: Path = CHAINCODE_DIR) -> str | None:
    """Why the chaincode in ``directory`` cannot run here (None if it can)."""
    if shutil.which("node") is None:
        return "node is not on PATH (install Node.js 18 or later with npm: the tests then build it)"
    if not _cli(directory).exists():
        return f"{directory}: run `npm ci` first (no fabric-chaincode-node), or install npm"
    if not (directory / "dist" / "index.js").exists():
        return f"{directory}: run `npm run build` first (no dist/index.js), or install npm"
    return None


def build_if_needed(directory: Path = CHAINCODE_DIR, timeout: float = 600.0) -> str | None:
    """Build the chaincode when it is not built and ``node`` and ``npm`` are here (once: a lock
    keeps parallel test sessions from building the same folder together). Returns why it
    could not be built (npm's last lines), or None."""
    if unavailable_reason(directory) is None or shutil.which("node") is None:
        return None
    npm = shutil.which("npm")
    if npm is None:
        return None  # unavailable_reason() says what is missing
    key = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"fedchain-chaincode-build-{key}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another session may be building it right now
        steps = []
        if not _cli(directory).exists():
            steps.append([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"])
        if not (directory / "dist" / "index.js").exists():
            steps.append([npm, "run", "build"])
        for step in steps:
            done = subprocess.run(step, cwd=directory, capture_output=True, text=True,
                                  timeout=timeout, check=False)  # fmt: skip
            if done.returncode != 0:
                tail = " / ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
                return f"`npm {' '.join(step[1:])}` failed in {directory}: {tail}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChaincodeProcess:
    """One chaincode server process; several peers may connect to it (as in CCaaS)."""

    def __init__(self, *, ready_timeout: float = 30.0) -> None:
        self.address = f"127.0.0.1:{_free_port()}"
        self._log = tempfile.NamedTemporaryFile(prefix="fedchain-chaincode-", suffix=".log")  # noqa: SIM115
        command = [
            shutil.which("node") or "node", str(_cli()), "server",
            f"--chaincode-address={self.address}", f"--chaincode-id={CHAINCODE_ID}",
            f"--module-path={CHAINCODE_DIR}",
        ]  # fmt: skip
        env = {**os.environ, "CORE_CHAINCODE_LOGGING_LEVEL": "warning"}
        self.process = subprocess.Popen(
            command, cwd=CHAINCODE_DIR, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        try:
            options = [
                ("grpc.initial_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 200),
            ]
            with grpc.insecure_channel(self.address, options=options) as channel:
                grpc.channel_ready_future(channel).result(timeout=ready_timeout)
        except grpc.FutureTimeoutError as exc:
            self.stop()
            raise RuntimeError(f"chaincode did not start listening:\n{self.log()}") from exc

    def log(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
