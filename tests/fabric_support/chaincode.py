"""Run the built chaincode as a service: ``fabric-chaincode-node server`` on a loopback port.

The chaincode must have been built (``npm ci && npm run build`` in ``chaincode/``; ``.ci/run``
does it). ``FEDCHAIN_CHAINCODE_DIR`` may point at another built copy.
"""

from __future__ import annotations

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


def _cli() -> Path:
    return CHAINCODE_DIR / "node_modules" / ".bin" / "fabric-chaincode-node"


def unavailable_reason() -> str | None:
    """Why the chaincode cannot run here (None if it can)."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not _cli().exists():
        return f"{CHAINCODE_DIR}: run `npm ci` first (no fabric-chaincode-node)"
    if not (CHAINCODE_DIR / "dist" / "index.js").exists():
        return f"{CHAINCODE_DIR}: run `npm run build` first (no dist/index.js)"
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
