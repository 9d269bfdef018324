"""The REAL Hyperledger Fabric network for tests: ``fabric-network/network.sh``'s processes.

``real_network`` (session) is, in order of preference:

1. the network whose work folder ``FEDCHAIN_FABRIC_NETWORK`` names (``.ci/run`` brings one up
   and sets it); it must be running, else the session fails;
2. a network this session brings up itself with ``network.sh up`` (a temporary work folder, a
   free block of ports or ``FEDCHAIN_FABRIC_PORT_BASE``'s) and deletes at the end, when
   Fabric's binaries are on ``PATH``;
3. otherwise a skip with a one-line reason, or a failure with ``FEDCHAIN_REQUIRE_FABRIC=1``.

Tests write to that network's channel (records are permanent there). A test that needs an
empty ledger takes a fresh chaincode name (``namespace()``: the same chaincode committed under
a new name, an empty world state) instead of a fresh network. Use the fixtures with
``pytest_plugins = ["tests.fabric_support.real"]``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fedchain.ledger import Record
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.fabric import FabricLedger, Gateway, Signer, connect, from_pki_identity
from fedchain.ledger.fabric.retry import Backoff
from fedchain.pki import AGGREGATOR_NAME, Consortium, Identity, load_consortium, load_identity
from tests.process_support import running, until

ROOT = Path(__file__).resolve().parents[2]
NETWORK_SH = ROOT / "fabric-network" / "network.sh"
ENV_NETWORK = "FEDCHAIN_FABRIC_NETWORK"
ENV_REQUIRE = "FEDCHAIN_REQUIRE_FABRIC"
FABRIC_BINS = ("peer", "orderer", "configtxgen", "osnadmin", "discover")
#: network.sh's ports span BASE+50 .. BASE+2999.
PORT_SPAN = range(50, 3000)
NAMESPACE_BATCH = 8
UP_TIMEOUT = 300.0


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (values maybe quoted), as topology.env and ports.env hold them."""
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key] = value.strip('"')
    return values


class RealNetwork:
    """A running network.sh network, known by its work folder."""

    def __init__(self, work: Path) -> None:
        self.work = work.resolve()
        self.topology = {**_env_file(ROOT / "fabric-network" / "topology.env"),
                         **_env_file(self.work / "ports.env")}  # fmt: skip
        self.orgs = self.topology["ORGS"].split()
        self.channel = self.topology["CHANNEL"]
        self.chaincode = self.topology["CHAINCODE_NAME"]
        self.aggregator_org = self.topology["AGGREGATOR_ORG"]
        self.pki = self.work / "pki"
        self.tomls = self.work / "fedchain"
        self._ports = dict(zip(self.orgs, self.topology["PEER_PORTS"].split(), strict=True))
        self._names: list[str] = []
        self._lock = threading.Lock()

    # -- where things are ------------------------------------------------------------------

    def endpoint(self, org: str) -> str:
        """``org``'s peer (its Gateway)."""
        return f"127.0.0.1:{self._ports[org]}"

    def tls_ca(self, org: str) -> bytes:
        return (self.pki / org / "msp" / "tlscacerts" / "ca.pem").read_bytes()

    def user(self, org: str) -> Identity:
        """The identity ``org`` writes with: the aggregator's for the aggregator's org."""
        name = AGGREGATOR_NAME if org == self.aggregator_org else "client1"
        return load_identity(self.pki / org / "users" / name)

    def consortium(self) -> Consortium:
        return load_consortium(self.pki)

    def node_names(self) -> list[str]:
        peers = [f"{self.topology['PEER_NAME']}.{org}" for org in self.orgs]
        return [f"{self.topology['ORDERER_NAME']}.{self.topology['ORDERER_ORG']}", *peers,
                "chaincode"]  # fmt: skip

    # -- network.sh --------------------------------------------------------------------------

    def network_sh(self, *args: str, timeout: float = 120.0) -> str:
        env = {**os.environ, "FEDCHAIN_FABRIC_WORK": str(self.work)}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        result = subprocess.run([str(NETWORK_SH), *args], capture_output=True, text=True,
                                env=env, timeout=timeout, check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"network.sh {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def problem(self) -> str | None:
        """Why this is not a running network, or None."""
        if not (self.work / ".fedchain-fabric-network").is_file():
            return f"{self.work} is not a network.sh work folder"
        stopped = [n for n in self.node_names() if self.pid(n) is None]
        if stopped:
            return f"the network in {self.work} is not running ({', '.join(stopped)} stopped)"
        return None

    def pid(self, name: str) -> int | None:
        """The PID of network process ``name`` (e.g. ``peer0.org1``) if it is alive."""
        try:
            pid = int((self.work / "run" / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if running(pid) else None

    def kill(self, name: str, timeout: float = 10.0) -> None:
        """``kill -9`` network process ``name`` and wait (bounded) until it is gone."""
        pid = self.pid(name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        gone = until(lambda: self.pid(name) is None, timeout)
        assert gone, f"{name} (pid {pid}) survived SIGKILL"

    def start(self) -> None:
        """Start whatever process of the network is not running (network.sh start)."""
        self.network_sh("start")

    def namespace(self) -> str:
        """A chaincode name nobody has used: the fedchain chaincode with an empty ledger."""
        with self._lock:
            if not self._names:
                tag = uuid.uuid4().hex[:8]
                names = [f"t{tag}-{i}" for i in range(NAMESPACE_BATCH)]
                self.network_sh("define", *names)
                self._names = names
            return self._names.pop(0)

    # -- clients -----------------------------------------------------------------------------

    def gateway(self, org: str, signer: Signer | None = None,
                identity: Identity | None = None) -> Gateway:  # fmt: skip
        """A Gateway connection to ``org``'s own peer as ``org``'s writing identity."""
        client, own = from_pki_identity(identity or self.user(org))
        return connect(self.endpoint(org), client, signer or own, tls_ca=self.tls_ca(org))


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(start: int = 23000, stop: int = 32000, step: int = 3000) -> int:
    """A port base whose every network.sh port is free on 127.0.0.1 right now."""
    for base in range(start, stop, step):
        if all(_bindable(base + offset) for offset in (50, 51, 52, 53, 1051, 1052, 2051, 2052,
                                                       2443, 2444, 2445, 2446, 2447, 2999)):
            return base
    raise RuntimeError(f"no free block of ports for a Fabric network between {start} and {stop}")


def _unavailable(reason: str) -> None:
    if os.environ.get(ENV_REQUIRE) == "1":
        pytest.fail(f"{ENV_REQUIRE}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNetwork]:
    given = os.environ.get(ENV_NETWORK)
    if given:
        network = RealNetwork(Path(given))
        problem = network.problem()
        if problem is not None:
            pytest.fail(f"{ENV_NETWORK}={given}: {problem}", pytrace=False)
        yield network
        return
    missing = [b for b in FABRIC_BINS if shutil.which(b) is None]
    if missing:
        _unavailable(f"no Fabric network: {ENV_NETWORK} unset and Fabric 2.5 binaries not on "
                     f"PATH ({', '.join(missing)})")  # fmt: skip
    if shutil.which("node") is None:
        _unavailable("no Fabric network: node (for the chaincode server) is not on PATH")
    network = RealNetwork(tmp_path_factory.mktemp("fabric") / "work")
    # The developer's port base when set (later network.sh calls inherit it and must agree).
    env = {"FEDCHAIN_FABRIC_PORT_BASE": os.environ.get("FEDCHAIN_FABRIC_PORT_BASE")
           or str(free_port_base())}  # fmt: skip
    try:
        _network_sh_env(network, env, "up")
        network = RealNetwork(network.work)  # now with its recorded ports
        yield network
    finally:
        _network_sh_env(network, {}, "clean", check=False)


def _network_sh_env(network: RealNetwork, extra: dict[str, str], *args: str,
                    check: bool = True) -> None:  # fmt: skip
    env = {**os.environ, **extra, "FEDCHAIN_FABRIC_WORK": str(network.work)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run([str(NETWORK_SH), *args], capture_output=True, text=True, env=env,
                            timeout=UP_TIMEOUT, check=False)  # fmt: skip
    if check and result.returncode != 0:
        pytest.fail(f"network.sh {' '.join(args)} failed:\n{result.stderr[-3000:]}")


OpenReal = Callable[..., "Synced"]
QUICK = Backoff(attempts=4, initial=0.05, factor=2.0, maximum=0.2)
SYNC_TIMEOUT = 15.0


def caught_up(ledger: FabricLedger, seq: int, timeout: float = SYNC_TIMEOUT) -> None:
    """Wait (bounded) until ``ledger``'s own peer has delivered the entry at ``seq``."""
    deadline = time.monotonic() + timeout
    head = ledger.head()
    while head < seq:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{ledger.org}'s peer never delivered entry {seq} (head {head})"
        got = ledger.wait(head, remaining)
        head = max([head, *(e.seq for e in got)])


class Synced:
    """A ``FabricLedger`` handle whose every write the test's other handles have seen before
    ``metadata_publish`` returns.

    Each organization reads and endorses through its own peer, and peers commit a block a few
    milliseconds apart: a test that writes as org1 and at once reads or writes as org2 would race
    org2's peer. The runtime never does that (an organization acts on what its own peer has
    delivered); the tests do, so they wait for it here instead.
    """

    def __init__(self, ledger: FabricLedger, group: list[Synced]) -> None:
        self.ledger, self._group = ledger, group

    def metadata_publish(self, records: Any) -> Any:
        entries = self.ledger.metadata_publish(records)
        if entries:
            for other in self._group:
                if other is not self:
                    caught_up(other.ledger, entries[-1].seq)
        return entries

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)


@pytest.fixture
def real_namespace(real_network: RealNetwork) -> str:
    """A fresh chaincode name on the real channel (an empty ledger)."""
    return real_network.namespace()


@pytest.fixture
def open_real(real_network: RealNetwork, real_namespace: str) -> Iterator[OpenReal]:
    """``open_real(org, **FabricLedger options)``: handles on ``real_namespace`` through
    ``org``'s own peer as ``org``'s identity (:class:`Synced`); closed after the test."""
    handles: list[Synced] = []

    def open_(org: str, **options: Any) -> Synced:
        options.setdefault("chaincode", real_namespace)
        options.setdefault("channel", real_network.channel)
        options.setdefault("backoff", QUICK)
        ledger = FabricLedger(real_network.gateway(org), owns_gateway=True, **options)
        handles.append(Synced(ledger, handles))
        return handles[-1]

    yield open_
    for handle in handles:
        handle.ledger.close()


@pytest.fixture
def real_genesis(real_network: RealNetwork) -> Record:
    return consortium_record(real_network.consortium())
