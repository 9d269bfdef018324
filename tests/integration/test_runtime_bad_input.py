"""§6 Bad input, refused through the runtime: real ``fedchain-client`` processes, real mTLS on
127.0.0.1, a real embedded ledger file.

* Malformed replies (NaN, Inf, wrong shape, wrong dtype), an oversized reply and a replayed
  reply are refused before aggregation, each with its reason in the round's ``close`` record,
  by a real ``fedchain-server`` (one run of four rounds; org2 and org3 misbehave by round).
* A cheating aggregator — an in-process ``LedgerGrid`` whose data plane serves other bytes than
  the ledger names, or another model than the ledger's hash — is refused by the organizations,
  which announce an error update instead of running their ClientApp.
* A task addressed to another organization is never run, and an update forged for it is
  refused by the ledger (``update.not_recipient``).
* An identity of another consortium, or of another org than configured, cannot take part.

The bare data-plane refusals (unknown CA at the handshake, claims in hand-made requests, hash
and size checks) are in ``test_transport.py``; they are not repeated here.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from tests.apps.tiny import init_params
from tests.integration.runtime_support import (
    WAIT,
    Deployment,
    Proc,
    by_org,
    closes,
    records,
)

from fedchain.errors import CertificateError, PeerAuthError, RuleViolation
from fedchain.ledger import parse_record
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.pki import (
    AGGREGATOR_NAME,
    Consortium,
    identity_dir,
    init_consortium,
    load_identity,
)
from fedchain.runtime.arrays import load_model
from fedchain.runtime.grid import GridSettings, LedgerGrid
from fedchain.transport import DataPlaneClient, DataPlaneServer

pytestmark = pytest.mark.slow

BAD_ARRAYS = "tests.apps.misbehaving:bad_arrays"
REPLAY_THEN_OVERSIZE = "tests.apps.misbehaving:replay_then_oversize"
ECHO = "tests.apps.misbehaving:echo"


# -- malformed, oversized and replayed replies: one real run ------------------------------------


@dataclasses.dataclass
class BadRun:
    dep: Deployment
    closes: dict[int, Any]


@pytest.fixture(scope="module")
def bad_run(consortium_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadRun]:
    """org1 honest; org2 sends NaN, a wrong shape, a wrong dtype, Inf (rounds 1-4); org3 is
    honest, then replays its round-1 reply, then sends a reply over the 0.25 MiB limit."""
    dep = Deployment(pki=consortium_dir, workdir=tmp_path_factory.mktemp("bad-replies"))
    try:
        agg, clients, _ = dep.start(
            {"org1": None, "org2": BAD_ARRAYS, "org3": REPLAY_THEN_OVERSIZE},
            rounds=4, env={"FEDCHAIN_SERVER__MAX_PAYLOAD_MB": "0.25"},
        )  # fmt: skip
        agg.expect_exit(0)
        for proc in clients.values():
            proc.expect_exit(0)
        yield BadRun(dep, closes(dep.ledger))
    finally:
        dep.stop_all()


@pytest.mark.parametrize(
    ("rnd", "org", "reason"),
    [
        (1, "org2", r"array 0 holds NaN or Inf"),
        (2, "org2", r"array 0: float32\[15, 8\] instead of float32\[16, 8\]"),
        (3, "org2", r"array 1: float64\[8\] instead of float32\[8\]"),
        (4, "org2", r"array 1 holds NaN or Inf"),
        (2, "org3", r"does not answer this task \(replayed\?\)"),
        (3, "org3", r"upload of \d+ bytes exceeds the limit of 262144"),
    ],
)
def test_bad_reply_is_refused_before_aggregation_with_its_reason(
    bad_run: BadRun, rnd: int, org: str, reason: str
) -> None:
    close = bad_run.closes[rnd]
    rejected = by_org(close["rejected"], "reason")
    assert re.search(reason, rejected.get(org, "")), rejected
    assert org not in by_org(close["aggregated"], "update_sha256")
    assert org not in by_org(close["dropouts"], "stage")
    # it was announced as a good update: only the aggregator's checks caught it
    (task,) = [t for t in records(bad_run.dep.ledger, kind="task", round=rnd)
               if t["type"] == "train"]  # fmt: skip
    (update,) = records(bad_run.dep.ledger, kind="update", task=task.task, org=org)
    assert update["status"] == "ok"


def test_honest_updates_are_aggregated_and_models_stay_finite(bad_run: BadRun) -> None:
    assert sorted(bad_run.closes) == [1, 2, 3, 4]
    expected = {1: ["org1", "org3"], 2: ["org1"], 3: ["org1"], 4: ["org1", "org3"]}
    previous = None
    for rnd, close in sorted(bad_run.closes.items()):
        assert sorted(by_org(close["aggregated"], "update_sha256")) == expected[rnd]
        model = load_model(bad_run.dep.models, close["model_sha256"]).to_numpy_ndarrays()
        assert [a.dtype for a in model] == [np.float32, np.float32]
        assert [a.shape for a in model] == [(16, 8), (8,)]
        assert all(np.isfinite(a).all() for a in model)
        assert close["model_sha256"] != previous
        previous = close["model_sha256"]


def test_a_replay_is_the_round_1_reply_byte_for_byte(bad_run: BadRun) -> None:
    updates = records(bad_run.dep.ledger, kind="update", org="org3")
    ours = {u.round: u["update_sha256"] for u in updates if ".train." in str(u.task)}
    assert ours[2] == ours[1]  # the same bytes, refused the second time


# -- a cheating aggregator, in process, against real organization processes ---------------------


class TamperingPlane(DataPlaneServer):
    """The aggregator's data plane, able to serve other bytes than it announced."""

    tamper = False

    def offer(self, sha256: str, data: Any, allowed_orgs: Any, *, verify: bool = True) -> None:
        if self.tamper:
            data = bytes(data[:-1]) + bytes([data[-1] ^ 0x01])
        super().offer(sha256, data, allowed_orgs, verify=False)


@dataclasses.dataclass
class Cheater:
    grid: LedgerGrid
    plane: TamperingPlane
    ledger: Path
    address: str
    clients: dict[str, Proc]
    rounds: Iterator[int]

    def send(self, models: dict[str, list[np.ndarray]]) -> tuple[str, list[Message]]:
        """One train task of the next round, ``models[org]`` to each org; its id and replies."""
        rnd = next(self.rounds)
        messages = []
        for org, model in models.items():
            content = RecordDict(
                {"arrays": ArrayRecord(model), "config": ConfigRecord({"server-round": rnd})}
            )
            node = self.grid.nodes.node(org)
            messages.append(self.grid.create_message(content, "train", node, str(rnd)))
        replies = list(self.grid.send_and_receive(messages, timeout=WAIT))
        (task,) = records(self.ledger, kind="task", round=rnd)
        return str(task.task), replies


@pytest.fixture(scope="module")
def cheater(
    consortium_dir: Path, consortium: Consortium, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cheater]:
    """An in-process aggregator (LedgerGrid, mTLS data plane) with org2 and org3 attached."""
    work = tmp_path_factory.mktemp("cheater")
    agg = load_identity(identity_dir(consortium_dir, "org1", AGGREGATOR_NAME))
    ledger = EmbeddedLedger.create(work / "ledger.sqlite", consortium, agg)
    plane = TamperingPlane(agg, consortium, max_payload_bytes=1 << 20)
    address = f"127.0.0.1:{plane.start('127.0.0.1:0')}"
    settings = GridSettings(run="cheat", deadline_s=WAIT, upload_grace_s=WAIT)
    grid = LedgerGrid(ledger, plane, consortium.orgs, settings, present=plane.present)
    dep = Deployment(pki=consortium_dir, workdir=work)
    try:
        clients = {org: dep.client(org, address, app=ECHO) for org in ("org2", "org3")}
        with plane.presence_changed:
            assert plane.presence_changed.wait_for(
                lambda: {"org2", "org3"} <= plane.present(), WAIT
            )
        yield Cheater(grid, plane, dep.ledger, address, clients, iter(range(1, 100)))
    finally:
        dep.stop_all()
        plane.stop(0)
        ledger.close()


def _ran(proc: Proc, task: str) -> bool:
    """Whether the org's ClientApp ran for ``task`` (the echo app says so on stdout)."""
    return any(e.get("state") == "ran" and str(e.get("id", "")).startswith(f"{task}/")
               for e in proc.events)  # fmt: skip


def test_payload_differing_from_its_ledger_hash_is_refused(cheater: Cheater) -> None:
    cheater.plane.tamper = True
    try:
        task, replies = cheater.send({"org2": init_params(), "org3": init_params()})
    finally:
        cheater.plane.tamper = False
    assert all(r.has_error() for r in replies)
    for org in ("org2", "org3"):
        (update,) = records(cheater.ledger, kind="update", task=task, org=org)
        assert update["status"] == "error"
        assert update["error"].startswith("HashMismatch")
        assert not _ran(cheater.clients[org], task)


def test_model_differing_from_the_ledgers_model_hash_is_refused(cheater: Cheater) -> None:
    # The aggregator equivocates: the ledger names org2's model, org3 is sent another one.
    task, replies = cheater.send({"org2": init_params(0), "org3": init_params(1)})
    ok = {r.metadata.src_node_id for r in replies if not r.has_error()}
    assert ok == {cheater.grid.nodes.node("org2")}
    (update,) = records(cheater.ledger, kind="update", task=task, org="org3")
    assert update["status"] == "error"
    assert "differs from the ledger's model hash" in update["error"]
    assert _ran(cheater.clients["org2"], task)
    assert not _ran(cheater.clients["org3"], task)


def test_task_for_another_org_is_not_run_and_a_forged_update_is_refused(
    cheater: Cheater, consortium_dir: Path, consortium: Consortium
) -> None:
    task, replies = cheater.send({"org2": init_params()})
    assert len(replies) == 1
    assert not replies[0].has_error()
    org3 = load_identity(identity_dir(consortium_dir, "org3", "client1"))
    (record,) = records(cheater.ledger, kind="update", task=task)
    forged = {**record.data, "org": "org3"}
    with (
        EmbeddedLedger.open(cheater.ledger, org3, consortium=consortium) as ledger,
        pytest.raises(RuleViolation) as refused,
    ):
        ledger.metadata_publish(parse_record(forged))
    assert refused.value.rule == "update.not_recipient"

    later, _ = cheater.send({"org3": init_params()})  # org3 was following all along
    assert _ran(cheater.clients["org3"], later)
    assert not _ran(cheater.clients["org3"], task)
    assert not any(e.get("task") == task for e in cheater.clients["org3"].events)
    assert [u.org for u in records(cheater.ledger, kind="update", task=task)] == ["org2"]


def test_org2_certificate_claiming_org3_is_unauthenticated(
    cheater: Cheater, consortium_dir: Path, consortium: Consortium
) -> None:
    org2 = load_identity(identity_dir(consortium_dir, "org2", "client1"))
    impostor = dataclasses.replace(org2, org="org3")  # org2's certificate and key, "org3"
    task, _ = cheater.send({"org3": init_params()})
    (mine,) = records(cheater.ledger, kind="task", task=task)[0]["recipients"]
    with DataPlaneClient(cheater.address, impostor, consortium, timeout=WAIT) as client:
        for call in (client.ping, lambda: client.fetch(mine["payload_sha256"], max_size=1 << 20)):
            with pytest.raises(PeerAuthError, match=r"UNAUTHENTICATED.*claims org 'org3'"):
                call()
    with pytest.raises(CertificateError, match="claims org3 but chains to org2"):
        EmbeddedLedger.open(cheater.ledger, impostor, consortium=consortium)


# -- identities that do not belong: real client processes ---------------------------------------


def _one_error_line(proc: Proc) -> str:
    assert proc.finish() == 1
    lines = [line for line in proc.stderr_text().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def test_identities_that_do_not_belong_cannot_take_part(
    cheater: Cheater, consortium_dir: Path, tmp_path: Path
) -> None:
    rogue_dir = tmp_path / "rogue"
    init_consortium(rogue_dir, consortium="rogue", orgs=("org1", "org9"), aggregator="org1")
    dep = Deployment(pki=consortium_dir, workdir=tmp_path)
    common = ["--server", cheater.address, "--ledger", str(cheater.ledger), "--json"]
    try:
        foreign = dep.spawn("foreign", "fedchain.cli.client", [
            "--pki", str(consortium_dir), "--identity", str(rogue_dir / "org9/users/client1"),
            *common], None)  # fmt: skip
        mislabeled = dep.spawn("mislabeled", "fedchain.cli.client", [
            "--pki", str(consortium_dir), "--org", "org3",
            "--identity", str(consortium_dir / "org2/users/client1"), *common], None)  # fmt: skip
        # a whole other consortium on its own (memory) ledger: only the handshake stops it
        outsider = dep.spawn("outsider", "fedchain.cli.client", [
            "--pki", str(rogue_dir), "--org", "org9", "--ledger-backend", "memory",
            "--server", cheater.address, "--json"], None)  # fmt: skip
        assert "not a CA of consortium 'testnet'" in _one_error_line(foreign)
        assert "is of org2, not of org3" in _one_error_line(mislabeled)
        # both sides refuse each other; the client, checking first, says so and exits (it used
        # to retry forever, as if the aggregator were down)
        line = _one_error_line(outsider)
        assert line.startswith(f"error: cannot attach to the aggregator at {cheater.address}: "
                               "the server's TLS certificate is not the aggregator's")  # fmt: skip
        assert "org9" not in cheater.plane.present()
    finally:
        dep.stop_all()


def test_a_member_pointed_at_another_consortiums_aggregator_says_so_and_exits(
    consortium_dir: Path, tmp_path: Path
) -> None:
    rogue_dir = tmp_path / "rogue"
    rogue = init_consortium(rogue_dir, consortium="rogue", orgs=("org1", "org2"), aggregator="org1")
    plane = DataPlaneServer(
        load_identity(identity_dir(rogue_dir, "org1", AGGREGATOR_NAME)), rogue,
        max_payload_bytes=1 << 20,
    )  # fmt: skip
    address = f"127.0.0.1:{plane.start('127.0.0.1:0')}"
    dep = Deployment(pki=consortium_dir, workdir=tmp_path)
    try:
        member = dep.spawn("member", "fedchain.cli.client", [
            "--pki", str(consortium_dir), "--org", "org2", "--ledger-backend", "memory",
            "--server", address, "--json"], None)  # fmt: skip
        line = _one_error_line(member)
        assert line.startswith(f"error: cannot attach to the aggregator at {address}: the "
                               "server's TLS certificate is not the aggregator's (")  # fmt: skip
        assert "from the TLS CA of org1" in line
        assert plane.present() == frozenset()
    finally:
        dep.stop_all()
        plane.stop(0)


def test_a_tls_certificate_the_aggregator_refuses_ends_the_client_with_one_line(
    cheater: Cheater, consortium_dir: Path, tmp_path: Path
) -> None:
    """org2's identity folder holding another consortium's ``tls/``: its signing certificate
    is fine, so only the aggregator's handshake can refuse it ("Socket closed" to gRPC)."""
    rogue_dir = tmp_path / "rogue"
    init_consortium(rogue_dir, consortium="rogue", orgs=("org1", "org2"), aggregator="org1")
    mixed = tmp_path / "client1"
    shutil.copytree(identity_dir(consortium_dir, "org2", "client1"), mixed)
    shutil.rmtree(mixed / "tls")
    shutil.copytree(identity_dir(rogue_dir, "org2", "client1") / "tls", mixed / "tls")
    dep = Deployment(pki=consortium_dir, workdir=tmp_path)
    try:
        member = dep.spawn("mixed", "fedchain.cli.client", [
            "--pki", str(consortium_dir), "--identity", str(mixed), "--server", cheater.address,
            "--ledger", str(cheater.ledger), "--json"], None)  # fmt: skip
        assert _one_error_line(member) == (
            f"error: cannot attach to the aggregator at {cheater.address}: the aggregator "
            "refused this organization's TLS certificate (it closed the connection right after "
            "the TLS handshake): it must come from a TLS CA of the consortium the aggregator "
            "runs with"
        )
    finally:
        dep.stop_all()
