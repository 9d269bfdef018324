"""The compose demo on a REAL Docker engine (opt-in: ``-m docker`` with FEDCHAIN_DOCKER_TESTS=1;
the engine and the base images come from ``DOCKER_HOST``, see docker/README.md).

``docker/up.sh`` builds the images (no Docker Hub: base images are build arguments, the builds
use the host network), brings the network up, trains, and audits the run as org2 with the model
files from the models volume. Then: a model file with a byte appended fails that audit;
``docker/down.sh`` stops every container promptly (each runs under an init, so SIGTERM is
forwarded instead of ignored by PID 1) and keeps the models volume; and ``up.sh`` fails, with
the client's log tail, when an organization's client exits non-zero.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.runtime_support import free_port

DOCKER_DIR = Path(__file__).resolve().parents[2] / "docker"
ENV_OPT_IN = "FEDCHAIN_DOCKER_TESTS"
PROJECT = "fedchain"
UP_TIMEOUT = 900.0
# A test may wait for up.sh and then down.sh: pytest's 300 s default cut `up.sh` short on a
# loaded machine while its own limit was far away.
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(UP_TIMEOUT + 300)]


def docker_env(**extra: str) -> dict[str, str]:
    """The environment: free loopback ports for the peers' published Gateways."""
    ports = {f"FEDCHAIN_ORG{i}_PEER_PORT": str(free_port()) for i in (1, 2, 3)}
    return {**os.environ, **ports, **extra}


def run(argv: list[str], env: dict[str, str], timeout: float = 120.0
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(argv, cwd=DOCKER_DIR, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def volumes() -> set[str]:
    listed = subprocess.run(["docker", "volume", "ls", "--format", "{{.Name}}"],
                            capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return set(listed.stdout.split())


@pytest.fixture(scope="module")
def engine() -> None:
    if os.environ.get(ENV_OPT_IN) != "1":
        pytest.skip(f"the compose demo on Docker is opt-in: {ENV_OPT_IN}=1")
    if shutil.which("docker") is None:
        pytest.fail("docker is not on PATH", pytrace=False)
    if run(["docker", "info"], dict(os.environ)).returncode != 0:
        pytest.fail("the Docker engine is not reachable (DOCKER_HOST?)", pytrace=False)
    if f"{PROJECT}_models" in volumes():
        pytest.fail(f"volume {PROJECT}_models exists: docker/down.sh --models first", pytrace=False)


def test_up_trains_audits_with_models_and_down_is_prompt_and_keeps_them(
    engine: None, tmp_path: Path
) -> None:
    env = docker_env()
    try:
        up = run(["./up.sh"], env, timeout=UP_TIMEOUT)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "training finished" in up.stdout
        assert "models in /models: " in up.stdout
        assert " verified, 0 missing, 0 altered" in up.stdout
        # A byte appended to one model file: the member's audit fails and names it.
        listed = run(["docker", "compose", "run", "--rm", "--no-deps", "--entrypoint", "sh",
                      "audit", "-c", "ls /models"], env)  # fmt: skip
        model = sorted(listed.stdout.split())[-1]
        appended = run(["docker", "run", "--rm", "-v", f"{PROJECT}_models:/m", "--entrypoint",
                        "sh", "fedchain:local", "-c", f"printf x >> /m/{model}"], env)  # fmt: skip
        assert appended.returncode == 0, appended.stderr
        audit = run(["docker", "compose", "run", "--rm", "--no-deps", "audit"], env)
        assert audit.returncode == 1
        assert f"differ from their ledger hash: {model}" in audit.stderr, audit.stderr
    finally:
        started = time.monotonic()
        down = run(["./down.sh"], env)
        took = time.monotonic() - started
    assert down.returncode == 0, down.stderr
    assert took < 8.0, f"docker/down.sh took {took:.1f} s (containers ignored SIGTERM?)"
    left = {v for v in volumes() if v.startswith(f"{PROJECT}_")}
    assert left == {f"{PROJECT}_models"}


def test_up_fails_with_the_log_tail_when_an_organization_s_client_fails(
    engine: None, tmp_path: Path
) -> None:
    """org2's client is given an organization that does not exist (an override file): it
    exits 1 at once while the aggregator waits; ``up.sh`` exits non-zero naming org2, with the
    end of org2's log, and does not report the training as finished."""
    override = tmp_path / "override.yaml"
    override.write_text('services:\n  org2:\n    command: ["--pki=/shared/pki", "--org=org9", '
                        '"--server=aggregator:9443", "--exit-when-done"]\n')  # fmt: skip
    env = docker_env(COMPOSE_FILE=f"compose.yaml{os.pathsep}{override}")
    try:
        up = run(["./up.sh"], env, timeout=UP_TIMEOUT)
        assert up.returncode != 0
        assert "error: org2 exited with status 1" in up.stderr, up.stderr[-3000:]
        assert "--- the last 40 lines of org2 ---" in up.stderr
        assert "org9" in up.stderr.split("--- the last 40 lines of org2 ---", 1)[1]
        assert "training finished" not in up.stdout
    finally:
        run(["./down.sh", "--models"], env)
