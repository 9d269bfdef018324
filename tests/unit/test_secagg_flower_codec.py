"""The Flower wire format of secure aggregation, the reply flattening, and ``LedgerAnchor``."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedchain.errors import ProtocolError, RuleViolation, UpdateRejected
from fedchain.flower import LedgerAnchor
from fedchain.flower.secagg_codec import (
    MaskingSpec,
    decode_client,
    decode_server,
    decode_spec,
    encode,
)
from fedchain.flower.secagg_layout import ArrayLayout, local_update, mean_metrics
from fedchain.ledger import MemoryLedger, MemoryStore, parse_record
from fedchain.runtime.nodes import node_id
from fedchain.secagg import (
    Abort,
    KeyAdvert,
    KeysBroadcast,
    MaskedInput,
    PublicKeys,
    RoundConfig,
    SetupRequest,
    ShareBundle,
    SharesDelivery,
    UnmaskReply,
    UnmaskRequest,
)

K1 = PublicKeys(bytes(range(32)), bytes(range(32, 64)))
K2 = PublicKeys(bytes(range(64, 96)), bytes(range(96, 128)))
CONFIG = RoundConfig("1.ab", ("11", "12", "13", "14"), threshold=3, dim=10, clip=4.0,
                     max_weight=100, degree=2, graph_seed=b"seed")


@pytest.mark.parametrize("msg", [
    SetupRequest(CONFIG), KeysBroadcast({"11": K1, "12": K2}), KeysBroadcast({}),
    SharesDelivery({"12": b"x" * 148}), UnmaskRequest(("11", "12"), ()), Abort("gone"),
])
def test_server_messages_round_trip(msg: object) -> None:
    assert decode_server(encode(msg)) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize("msg", [
    KeyAdvert(K1), ShareBundle({"11": b"a", "13": b"b"}),
    UnmaskReply({"11": b"s"}, {"12": b"k"}), UnmaskReply({}, {}),
])
def test_client_messages_round_trip(msg: object) -> None:
    assert decode_client(encode(msg)) == msg  # type: ignore[arg-type]


def test_masked_input_travels_as_its_exact_bytes() -> None:
    vec = np.arange(11, dtype=np.uint32) * 7
    record = encode(MaskedInput(vec))
    assert record["masked"] == vec.astype("<u4").tobytes()
    decoded = decode_client(record)
    assert isinstance(decoded, MaskedInput)
    assert np.array_equal(decoded.masked, vec)


def test_the_masking_spec_travels_with_the_setup() -> None:
    spec = MaskingSpec("n", ("loss", "acc"), 5.0)
    assert decode_spec(encode(SetupRequest(CONFIG), spec)) == spec


@pytest.mark.parametrize("record", [
    {"kind": "nonsense"},
    {"kind": "key_advert"},
    {"kind": "key_advert", "keys": b"short"},
    {"kind": "keys_broadcast", "orgs": ["11"], "keys": []},
    {"kind": "keys_broadcast", "orgs": ["11", "11"], "keys": [K1.to_bytes()] * 2},
    {"kind": "share_bundle", "orgs": ["11"], "ciphertexts": ["text"]},
    {"kind": "masked_input", "masked": b"abc"},
    {"kind": "unmask_request", "survivors": [], "dropped": []},
])
def test_malformed_or_misdirected_records_are_protocol_errors(record: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        decode_client(ConfigRecord(record))  # type: ignore[arg-type]


def test_an_unacceptable_configuration_is_refused_by_the_organization() -> None:
    record = encode(SetupRequest(CONFIG))
    record["threshold"] = 1  # below a strict majority of each holder set
    with pytest.raises(ProtocolError, match="unacceptable round configuration"):
        decode_server(record)
    record["threshold"] = True
    with pytest.raises(ProtocolError, match="threshold"):
        decode_server(record)


def test_layout_flattens_and_restores_keys_shapes_and_dtypes() -> None:
    model = ArrayRecord({"w": Array(np.arange(6, dtype=np.float32).reshape(2, 3)),
                         "n": Array(np.array([3, 4], dtype=np.int64))})
    layout = ArrayLayout.of(model)
    assert layout.size == 8
    spec = MaskingSpec(metric_keys=("loss",), metric_bound=10.0)
    reply = RecordDict({"a": model, "m": MetricRecord({"num-examples": 7, "loss": 2.5})})
    update = local_update("org", reply, layout, spec, clip=4.0)
    assert update.weight == 7
    assert np.array_equal(np.asarray(update.vector)[:8], [0, 1, 2, 3, 4, 5, 3, 4])
    assert np.asarray(update.vector)[8] == pytest.approx(2.5 * 4.0 / 10.0)
    back = layout.unflatten(np.array([0, 1, 2, 3, 4, 5, 2.6, 4.4]))
    assert back["w"].dtype == "float32"
    assert back["w"].shape == (2, 3)
    assert back["n"].numpy().tolist() == [3, 4]
    assert back["n"].dtype == "int64"
    mean = np.asarray(update.vector, dtype=np.float64)
    assert mean_metrics(mean, layout, spec, 4.0, 7) == MetricRecord({"loss": 2.5,
                                                                    "num-examples": 7})


@pytest.mark.parametrize(("metrics", "why"), [
    ({"num-examples": 2.5}, "integer sample count"),
    ({"loss": 1.0}, "integer sample count"),
    ({"num-examples": 3}, "declared metric 'loss'"),
    ({"num-examples": 3, "loss": float("nan")}, "declared metric 'loss'"),
])
def test_replies_without_a_usable_weight_or_metric_are_rejected(
    metrics: dict[str, float], why: str
) -> None:
    model = ArrayRecord({"w": Array(np.zeros(3, dtype=np.float32))})
    reply = RecordDict({"a": model, "m": MetricRecord(metrics)})  # type: ignore[arg-type]
    with pytest.raises(UpdateRejected, match=why):
        local_update("org", reply, ArrayLayout.of(model), MaskingSpec(metric_keys=("loss",)), 1.0)


def _ledger_with_task(orgs: list[str]) -> MemoryStore:
    store = MemoryStore()
    head = MemoryLedger(store, "org1")
    head.metadata_publish(parse_record({
        "v": 1, "kind": "consortium", "org": "org1", "name": "t", "aggregator": "org1",
        "orgs": [{"id": o, "ca_sha256": "0" * 64} for o in orgs]}))
    head.metadata_publish(parse_record({
        "v": 1, "kind": "run", "org": "org1", "run": "r", "app_sha256": "0" * 64,
        "strategy_sha256": "0" * 64, "model_sha256": "0" * 64, "config": {}}))
    head.metadata_publish(parse_record({
        "v": 1, "kind": "task", "org": "org1", "run": "r", "round": 1, "task": "t1",
        "type": "train", "model_sha256": None, "deadline": 2**40,
        "recipients": [{"org": o, "payload_sha256": "0" * 64, "payload_size": 1}
                       for o in orgs[:2]]}))
    return store


def test_ledger_anchor_publishes_and_reads_keys_by_node_id() -> None:
    store = _ledger_with_task(["org1", "org2", "org3"])
    anchors = {org: LedgerAnchor(MemoryLedger(store, org), run="r", round=1, task="t1")
               for org in ("org1", "org2", "org3")}
    anchors["org1"].publish_keys(K1)
    anchors["org2"].publish_keys(K2)
    assert anchors["org3"].trusted_keys("t1") == {node_id("org1"): K1, node_id("org2"): K2}
    assert anchors["org3"].trusted_keys("other") == {}
    with pytest.raises(RuleViolation, match=r"keys\.not_recipient"):
        anchors["org3"].publish_keys(K1)  # not a recipient of t1
    with pytest.raises(RuleViolation, match=r"keys\.duplicate"):
        anchors["org1"].publish_keys(K2)  # keys cannot be replaced once published


@pytest.mark.parametrize("values", [
    np.arange(12, dtype=np.float32).reshape(3, 4), np.asfortranarray(np.ones((2, 3))),
    np.arange(5, dtype=">i4"), np.array(3.5), np.zeros((0, 3), dtype=np.float16),
])
def test_arrays_are_read_exactly_whatever_their_layout(values: np.ndarray) -> None:
    model = ArrayRecord({"a": Array(values), "b": Array(np.ones(2, dtype=np.float32))})
    layout = ArrayLayout.of(model)
    out = np.zeros(layout.size)
    layout.flatten_into(model, out)
    assert np.array_equal(out, np.concatenate([values.ravel(), [1.0, 1.0]]))
