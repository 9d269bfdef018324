"""Secure aggregation through the real runtime: ``LedgerGrid`` + ``ClientRuntime`` threads, the
memory ledger, and the mTLS data plane on 127.0.0.1 (certificates from fedchain.pki).

The secure run must produce the plain FedAvg model within the quantization bound, the ledger
must commit to the masked updates only (never a plaintext hash, sample count or metric), keys
must be anchored by their owners, and an aggregator that substitutes a relayed key is refused
and recorded (G3).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg, Result, Strategy

from fedchain.examples import digits
from fedchain.examples.digits_model import init_params
from fedchain.flower import LedgerStrategy, SecureAggregation
from fedchain.flower.secagg_codec import SECAGG_RECORD, decode_server, encode, secagg_record
from fedchain.ledger import MemoryLedger, MemoryStore, Query, Record, parse_record
from fedchain.pki import Consortium, identity_dir, load_identity
from fedchain.runtime.client import ClientRuntime, ClientSettings
from fedchain.runtime.grid import GridSettings, LedgerGrid
from fedchain.runtime.nodes import node_id
from fedchain.secagg import KeysBroadcast, PublicKeys, error_bound
from fedchain.secagg.keys import x25519_public
from fedchain.transport import DataPlaneClient, DataPlaneServer

ORGS = ("org1", "org2", "org3")
MAX_WEIGHT = 1437
TRAIN = ConfigRecord({"lr": 0.2, "epochs": 5})
_RUNS = itertools.count(1)


@contextmanager
def consortium_run(
    pki: Path, consortium: Consortium, app: ClientApp, grid_class: type[LedgerGrid] = LedgerGrid
) -> Iterator[tuple[LedgerGrid, MemoryStore]]:
    """The aggregator's grid and the ledger store, with every organization following it."""
    store = MemoryStore()
    MemoryLedger(store, "org1").metadata_publish(parse_record({
        "v": 1, "kind": "consortium", "org": "org1", "name": "testnet", "aggregator": "org1",
        "orgs": [{"id": o, "ca_sha256": f} for o, f in sorted(consortium.fingerprints().items())],
    }))
    server = DataPlaneServer(load_identity(identity_dir(pki, "org1", "aggregator")), consortium,
                             max_payload_bytes=1 << 24)
    port = server.start("127.0.0.1:0")
    stop, threads = threading.Event(), []
    for org in ORGS:
        identity = load_identity(identity_dir(pki, org, "client1"))
        client = DataPlaneClient(f"localhost:{port}", identity, consortium)
        runtime = ClientRuntime(MemoryLedger(store, org), client, app, orgs=consortium.orgs,
                                settings=ClientSettings(exit_when_done=True))
        threads.append(threading.Thread(target=runtime.run, args=(stop,), daemon=True))
        threads[-1].start()
    run = f"run{next(_RUNS)}"  # organizations remember the rounds they unmasked, per run
    grid = grid_class(MemoryLedger(store, "org1"), server, consortium.orgs,
                      GridSettings(run=run, deadline_s=30.0, config={"rounds": 2}))
    try:
        yield grid, store
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        server.stop()


def _train(grid: LedgerGrid, inner: Strategy) -> Result:
    return LedgerStrategy(inner).start(grid=grid, initial_arrays=ArrayRecord(init_params(0)),
                                       num_rounds=2, train_config=TRAIN)


def _secure() -> SecureAggregation:
    return SecureAggregation(FedAvg(min_available_nodes=3), max_weight=MAX_WEIGHT,
                             metrics=("train_loss",))


def _records(store: MemoryStore, kind: str, **fields: Any) -> list[Record]:
    query = Query(kind=kind, **fields)
    return [e.record for e in store.entries if query.matches(e)]


def test_secure_run_equals_plain_fedavg_and_the_ledger_sees_only_masked_updates(
    consortium_dir: Path, consortium: Consortium
) -> None:
    with consortium_run(consortium_dir, consortium, digits.client_app) as (grid, _):
        plain = _train(grid, FedAvg(min_available_nodes=3))
    with consortium_run(consortium_dir, consortium, digits.secure_client_app) as (grid, store):
        secure = _train(grid, _secure())
    # round 1 differs by quantization only; round 2 trains from that model
    bound = 4 * error_bound(3, 8.0, MAX_WEIGHT) / 100 + 1e-6
    for a, b in zip(plain.arrays.to_numpy_ndarrays(), secure.arrays.to_numpy_ndarrays(),
                    strict=True):
        assert float(np.abs(a - b).max()) <= bound
    for rnd in (1, 2):
        tasks = _records(store, "task", round=rnd)
        setup, masked = tasks[0], next(t for t in tasks if t["model_sha256"] is not None)
        keys = {r.org: r["keys"] for r in _records(store, "keys", task=setup.task)}
        assert sorted(keys) == list(ORGS)  # every owner anchored its own keys
        updates = {r.org: r for r in _records(store, "update", task=masked.task)}
        (close,) = _records(store, "close", round=rnd)
        assert {a["org"]: a["update_sha256"] for a in close["aggregated"]} == {
            org: u["update_sha256"] for org, u in updates.items()}
        assert close["dropouts"] == []
        assert close["model_sha256"] is not None
        for update in updates.values():  # nothing about a plaintext update is on the ledger
            assert update["num_examples"] == 0
            assert update["metrics"] == {}
        assert close["metrics"]["train_loss"] == pytest.approx(
            secure.train_metrics_clientapp[rnd]["train_loss"])


class KeySwappingGrid(LedgerGrid):
    """A cheating aggregator: it relays its own public keys as org2's to org3 (a MITM)."""

    fake = PublicKeys(x25519_public(bytes([5]) * 32), x25519_public(bytes([6]) * 32))

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        out = list(messages)
        for msg in out:
            record = secagg_record(msg.content)
            if record is None or msg.metadata.dst_node_id != node_id("org3"):
                continue
            relayed = decode_server(record)
            if isinstance(relayed, KeysBroadcast):
                keys = {**relayed.keys, str(node_id("org2")): self.fake}
                msg.content[SECAGG_RECORD] = encode(KeysBroadcast(keys))
        return super().send_and_receive(out, timeout=timeout)


def test_a_substituted_key_is_refused_and_recorded_on_the_ledger(
    consortium_dir: Path, consortium: Consortium
) -> None:
    with consortium_run(consortium_dir, consortium, digits.secure_client_app,
                        KeySwappingGrid) as (grid, store):
        _train(grid, _secure())
    for rnd in (1, 2):
        refused = [u for u in _records(store, "update", round=rnd, org="org3")
                   if u["status"] == "error"]
        assert len(refused) == 1
        assert "KeyMismatch" in refused[0]["error"]
        (close,) = _records(store, "close", round=rnd)
        assert close["dropouts"] == [{"org": "org3", "stage": "secagg.share_keys"}]
        assert [a["org"] for a in close["aggregated"]] == ["org1", "org2"]
        assert close["model_sha256"] is not None  # the honest majority still finished
