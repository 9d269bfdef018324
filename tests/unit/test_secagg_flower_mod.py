"""``secagg_mod`` on real ClientApps: plain messages untouched, refusals as error replies, and
ledger anchoring of keys (G3) with an in-process anchor."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from tests.unit.secagg_flower_apps import (
    MAX_WEIGHT,
    NODES,
    anchor_mod,
    fedavg,
    grid_of,
    model,
    toy_app,
)

from fedchain.flower import LocalGrid, SecureAggregation, make_secagg_mod, secagg_mod
from fedchain.flower.secagg_codec import SECAGG_RECORD, decode_server, encode, secagg_record
from fedchain.flower.secagg_mod import SECAGG_ERROR_CODE
from fedchain.runtime.messages import bind_task_identity
from fedchain.secagg import (
    Abort,
    KeysBroadcast,
    Kind,
    PublicKeys,
    RoundConfig,
    SetupRequest,
    Stage,
)
from fedchain.secagg.keys import x25519_public


def _kind(msg: Message) -> Kind | None:
    record = secagg_record(msg.content) if msg.has_content() else None
    return None if record is None else Kind(str(record["kind"]))


def _secure() -> SecureAggregation:
    return SecureAggregation(fedavg(), max_weight=MAX_WEIGHT)


@pytest.mark.parametrize("mtype", ["train", "evaluate", "query"])
def test_plain_messages_pass_through_the_mod_untouched(mtype: str) -> None:
    bind_task_identity(1, 1)
    content = RecordDict({"arrays": model(), "config": ConfigRecord({"server-round": 1})})
    msg = Message(content, 11, mtype)
    context = Context(1, 11, {}, RecordDict(), {})
    seen: list[Message] = []
    answer = Message(RecordDict({"metrics": MetricRecord({"x": 1.0})}), reply_to=msg)

    def app(m: Message, c: Context) -> Message:
        seen.append(m)
        return answer

    assert secagg_mod(msg, context, app) is answer
    assert seen == [msg]
    assert seen[0] is msg
    assert list(msg.content.keys()) == ["arrays", "config"]


def test_plain_runs_give_identical_replies_with_and_without_the_mod() -> None:
    replies: dict[bool, dict[tuple[str, int], Message]] = {True: {}, False: {}}
    for with_mod in (True, False):
        got = replies[with_mod]
        grid = grid_of(toy_app([make_secagg_mod()] if with_mod else []), observe=lambda m, r, g=got:
                       g.__setitem__((m.metadata.message_type, m.metadata.dst_node_id), r))
        fedavg().start(grid=grid, initial_arrays=model(), num_rounds=1)
    assert set(replies[True]) == set(replies[False])
    assert len(replies[True]) == 2 * len(NODES)
    for key, a in replies[True].items():
        b = replies[False][key]
        assert list(a.content.keys()) == list(b.content.keys())
        for name, arrays in a.content.array_records.items():
            for k, array in arrays.items():
                assert np.array_equal(array.numpy(), b.content.array_records[name][k].numpy())
        assert a.content.metric_records == b.content.metric_records


def test_a_stage_message_without_a_round_is_refused_with_an_error_reply() -> None:
    bind_task_identity(1, 1)
    record = encode(KeysBroadcast({}))
    msg = Message(RecordDict({SECAGG_RECORD: record}), 11, "train")
    reply = make_secagg_mod()(msg, Context(1, 11, {}, RecordDict(), {}), lambda m, c: m)
    assert reply.has_error()
    assert reply.error.code == SECAGG_ERROR_CODE
    assert str(reply.error.reason).startswith("StageError")


def _errors(seen: Iterable[tuple[Message, Message]]) -> dict[int, str]:
    """Error replies to train-type messages (secure-aggregation stages and training), by node."""
    return {m.metadata.dst_node_id: str(r.error.reason) for m, r in seen
            if r.has_error() and m.metadata.message_type == "train"}


def test_require_anchor_refuses_to_take_part_without_a_ledger() -> None:
    seen: list[tuple[Message, Message]] = []
    strategy = _secure()
    grid = grid_of(toy_app([make_secagg_mod(require_anchor=True)]),
                   observe=lambda m, r: seen.append((m, r)))
    strategy.start(grid=grid, initial_arrays=model(), num_rounds=1)
    assert set(_errors(seen)) == set(NODES)
    assert all("ledger-anchored keys are required" in e for e in _errors(seen).values())
    assert strategy.reports[1].dropouts == dict.fromkeys(NODES, Stage.ADVERTISE_KEYS)


def test_anchored_keys_are_published_and_relayed_unchanged() -> None:
    board: dict[str, dict[int, PublicKeys]] = {}
    seen: list[tuple[Message, Message]] = []
    grid = grid_of(toy_app([anchor_mod(board), make_secagg_mod()]),
                   observe=lambda m, r: seen.append((m, r)))
    strategy = _secure()
    strategy.start(grid=grid, initial_arrays=model(), num_rounds=1)
    assert strategy.reports[1].contributors == NODES
    published = board["1:setup_request"]
    assert set(published) == set(NODES)
    for msg, _ in seen:
        if _kind(msg) is Kind.KEYS_BROADCAST:
            relayed = decode_server(msg.content.config_records[SECAGG_RECORD])
            assert isinstance(relayed, KeysBroadcast)
            assert {int(o): k for o, k in relayed.keys.items()} == {
                n: published[n] for n in NODES if n != msg.metadata.dst_node_id}


class SwappingGrid(LocalGrid):
    """An aggregator that relays its own key instead of node 12's to node 13 (a MITM)."""

    fake = PublicKeys(x25519_public(bytes([7]) * 32), x25519_public(bytes([8]) * 32))

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        out = []
        for msg in messages:
            if _kind(msg) is Kind.KEYS_BROADCAST and msg.metadata.dst_node_id == 13:
                keys = dict(decode_server(msg.content.config_records[SECAGG_RECORD]).keys)  # type: ignore[union-attr]
                keys["12"] = self.fake
                msg.content[SECAGG_RECORD] = encode(KeysBroadcast(keys))
            out.append(msg)
        return super().push_messages(out)


@pytest.mark.parametrize("anchor", [True, False])
def test_a_substituted_key_is_caught_only_with_anchoring(anchor: bool) -> None:
    seen: list[tuple[Message, Message]] = []
    mods = [anchor_mod({}), make_secagg_mod()] if anchor else [make_secagg_mod()]
    grid = SwappingGrid(dict.fromkeys(NODES, toy_app(mods)),
                        observe=lambda m, r: seen.append((m, r)))
    strategy = _secure()
    strategy.start(grid=grid, initial_arrays=model(), num_rounds=1)
    victim = [r for m, r in seen if _kind(m) is Kind.KEYS_BROADCAST
              and m.metadata.dst_node_id == 13]
    if anchor:
        assert victim[0].has_error()
        assert str(victim[0].error.reason).startswith("KeyMismatch")
        assert strategy.reports[1].dropouts == {13: Stage.SHARE_KEYS}
        assert strategy.reports[1].contributors == (11, 12, 14, 15)
    else:  # without a ledger the victim seals its shares for node 12 to the aggregator's key
        assert not victim[0].has_error()
        assert _kind(victim[0]) is Kind.SHARE_BUNDLE


def test_a_reply_that_does_not_fit_the_model_is_rejected_by_the_mod() -> None:
    app = toy_app([make_secagg_mod()])
    bad = ClientApp(mods=[make_secagg_mod()])

    @bad.train()
    def train(msg: Message, context: Context) -> Message:
        arrays = ArrayRecord({"w": Array(np.zeros((2, 2), dtype=np.float32))})
        metrics = MetricRecord({"num-examples": 5})
        return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)

    seen: list[tuple[Message, Message]] = []
    grid = LocalGrid({**dict.fromkeys(NODES, app), 14: bad},
                     observe=lambda m, r: seen.append((m, r)))
    strategy = _secure()
    strategy.start(grid=grid, initial_arrays=model(), num_rounds=1)
    assert _errors(seen)[14].startswith("UpdateRejected")
    assert strategy.reports[1].dropouts == {14: Stage.COLLECT_MASKED}


def test_no_organization_unmasks_twice_in_one_ledger_round() -> None:
    board: dict[str, dict[int, PublicKeys]] = {}
    grid = grid_of(toy_app([anchor_mod(board), make_secagg_mod()]))
    strategy = _secure()
    strategy.start(grid=grid, initial_arrays=model(), num_rounds=1)
    assert strategy.reports[1].contributors == NODES
    board.clear()  # even with fresh keys, a second sum over round 1's updates is refused
    again = strategy.configure_train(1, model(), ConfigRecord(), grid)
    assert list(again) == []
    assert strategy.reports[1].failure is not None
    assert strategy.reports[1].dropouts == dict.fromkeys(NODES, Stage.ADVERTISE_KEYS)


def test_an_abort_makes_the_organization_forget_the_round() -> None:
    bind_task_identity(1, 1)
    mod, context = make_secagg_mod(), Context(1, 11, {}, RecordDict(), {})
    config = RoundConfig("1.x", ("11", "12", "13"), threshold=2, dim=4, clip=1.0, max_weight=9)

    def send(message: SetupRequest | Abort | KeysBroadcast) -> Message:
        msg = Message(RecordDict({SECAGG_RECORD: encode(message)}), 11, "train")
        return mod(msg, context, lambda m, c: m)

    assert _kind(send(SetupRequest(config))) is Kind.KEY_ADVERT
    aborted = send(Abort("the aggregator gave up"))
    assert not aborted.has_error()
    assert not aborted.content.config_records
    late = send(KeysBroadcast({}))
    assert late.has_error()
    assert str(late.error.reason).startswith("StageError")
