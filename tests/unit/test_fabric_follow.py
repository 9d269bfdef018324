"""Ledger positions from chaincode events, the resume file, and the retry policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.conformance.ledger_suite import run_record, task_record

from fedchain.errors import (
    EndorseError,
    GatewayError,
    LedgerError,
    LedgerUnavailable,
    SubmitError,
)
from fedchain.ledger import parse_record
from fedchain.ledger.fabric.follow import (
    EventIndex,
    IndexedTx,
    ResumeFile,
    pack_seq,
    parse_event_records,
    unpack_seq,
)
from fedchain.ledger.fabric.retry import (
    LAG_DELAYS,
    Backoff,
    is_transient,
    refusal,
    refused_by_others_only,
    retrying,
    while_others_lag,
)

position = st.tuples(
    st.integers(0, 2**31 - 1), st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1)
)


@given(position, position)
def test_seq_packing_is_invertible_and_keeps_ledger_order(
    a: tuple[int, int, int], b: tuple[int, int, int]
) -> None:
    assert unpack_seq(pack_seq(*a)) == a
    assert (pack_seq(*a) < pack_seq(*b)) == (a < b)
    assert pack_seq(*a) < 2**63


@pytest.mark.parametrize("bad", [(-1, 0, 0), (0, 2**16, 0), (0, 0, 2**16), (2**31, 0, 0)])
def test_positions_out_of_range_are_refused(bad: tuple[int, int, int]) -> None:
    with pytest.raises(LedgerError):
        pack_seq(*bad)


def _tx(block: int, position: int, tx_id: str, *tasks: str) -> IndexedTx:
    records = tuple(parse_record(task_record(t, 1)) for t in tasks) or (
        parse_record(run_record(tx_id)),
    )
    return IndexedTx(block, position, tx_id, records)


def test_the_index_answers_after_a_position_and_skips_replays() -> None:
    index = EventIndex()
    assert (index.head, index.resume_block) == (-1, 0)
    first, second, third = _tx(3, 0, "a", "t1", "t2"), _tx(3, 1, "b"), _tx(5, 0, "c")
    assert all(index.add(tx) for tx in (first, second, third))
    assert not index.add(_tx(3, 0, "a", "t1", "t2"))  # replayed after a resume
    assert index.head == pack_seq(5, 0, 0)
    assert index.resume_block == 5
    assert index.after(-1) == [first, second, third]
    assert index.after(pack_seq(3, 0, 0)) == [first, second, third]  # t2 is still after it
    assert index.after(pack_seq(3, 0, 1)) == [second, third]
    assert index.after(index.head) == []
    with pytest.raises(LedgerError, match="out of ledger order"):
        index.add(_tx(4, 0, "late"))


def test_event_payloads_must_be_arrays_of_valid_records() -> None:
    payload = json.dumps([run_record()]).encode()
    (record,) = parse_event_records(payload)
    assert record.kind == "run"
    for bad in (b"[]", b"{}", b'[{"kind":"run"}]'):
        with pytest.raises(LedgerError):
            parse_event_records(bad)


def test_the_resume_file_round_trips_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "index"
    saved = ResumeFile(path, "fedchain", "fedchain")
    txs = [_tx(1, 0, "a", "t1", "t2"), _tx(2, 0, "b")]
    saved.reset(txs[:1])
    saved.append(txs[1:])
    assert ResumeFile(path, "fedchain", "fedchain").load() == txs
    with path.open("a") as fh:
        fh.write('{"b": 3, "p": 0, "tx": "c", "rec')  # a crash mid-line
    assert ResumeFile(path, "fedchain", "fedchain").load() == txs
    assert ResumeFile(path, "other", "fedchain").load() == []  # another channel's index
    assert ResumeFile(tmp_path / "missing", "fedchain", "fedchain").load() == []


def test_retrying_retries_transient_errors_only() -> None:
    assert list(Backoff(attempts=5, initial=0.1, factor=3, maximum=0.5).delays()) == [
        0.1, 0.30000000000000004, 0.5, 0.5,
    ]  # fmt: skip
    slept: list[float] = []
    outcomes: list[Exception | str] = [
        SubmitError("x", code="UNAVAILABLE"), SubmitError("x", code="DEADLINE_EXCEEDED"), "done",
    ]  # fmt: skip

    def step() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    backoff = Backoff(attempts=3, initial=1.0, factor=2.0)
    assert retrying(step, "submit", backoff, slept.append) == "done"
    assert slept == [1.0, 2.0]
    refused = EndorseError("x", code="ABORTED")
    with pytest.raises(EndorseError):
        retrying(lambda: (_ for _ in ()).throw(refused), "endorse", backoff, slept.append)
    assert slept == [1.0, 2.0]  # no retry of a refusal
    down = GatewayError("down", code="UNAVAILABLE")
    with pytest.raises(LedgerUnavailable) as info:
        retrying(lambda: (_ for _ in ()).throw(down), "evaluate", backoff, slept.append)
    assert info.value.__cause__ is down
    assert info.value.retried  # the runtime must not retry it again
    assert slept == [1.0, 2.0, 1.0, 2.0]


def test_too_few_live_endorsers_is_transient_but_an_unknown_chaincode_is_not() -> None:
    """The real gateway's words (Fabric 2.5.12): a peer just restarted, before gossip finds the
    others, cannot plan an endorsement for a while; a chaincode nobody defined never will."""
    warming = EndorseError(
        "no combination of peers can be derived which satisfy the endorsement policy: "
        "no peer combination can satisfy the endorsement policy", code="FAILED_PRECONDITION",
    )  # fmt: skip
    undefined = EndorseError(
        "no combination of peers can be derived which satisfy the endorsement policy: "
        "No metadata was found for chaincode nope in channel fedchain", code="FAILED_PRECONDITION",
    )  # fmt: skip
    assert is_transient(warming)
    assert not is_transient(undefined)
    outcomes: list[Exception | str] = [warming, "done"]

    def step() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    slept: list[float] = []
    assert retrying(step, "endorse", Backoff(attempts=2, initial=0.5), slept.append) == "done"
    assert slept == [0.5]
    with pytest.raises(EndorseError):
        retrying(lambda: (_ for _ in ()).throw(undefined), "endorse", Backoff(), slept.append)
    assert slept == [0.5]


def test_a_channel_the_peer_does_not_have_is_not_transient() -> None:
    """A real 2.5.12 peer answers UNAVAILABLE for an unknown channel: retrying a misspelt name
    for the whole outage budget (~26 s) only delays the error."""
    unknown = GatewayError(
        "failed to get config for channel [nochannel]: could not get last config for channel "
        "nochannel", code="UNAVAILABLE",
    )  # fmt: skip
    slept: list[float] = []
    with pytest.raises(GatewayError) as info:
        retrying(lambda: (_ for _ in ()).throw(unknown), "evaluate", Backoff(), slept.append)
    assert info.value is unknown
    assert slept == []
    assert is_transient(GatewayError("connection refused", code="UNAVAILABLE"))


def test_an_endorsement_policy_still_unsatisfiable_after_the_backoff_says_so_plainly() -> None:
    """When the peers never become enough (a majority down, gossip that cannot reach the
    others), the user's last word says the endorsement policy cannot be satisfied yet, names the
    gateway and what to check, not just 'unavailable'."""
    warming = EndorseError(
        "no combination of peers can be derived which satisfy the endorsement policy: "
        "no peer combination can satisfy the endorsement policy", code="FAILED_PRECONDITION",
    )  # fmt: skip
    slept: list[float] = []
    backoff = Backoff(attempts=3, initial=1.0)
    with pytest.raises(LedgerUnavailable) as info:
        retrying(lambda: (_ for _ in ()).throw(warming), "endorse", backoff, slept.append,
                 gateway="127.0.0.1:7051")  # fmt: skip
    message = str(info.value)
    assert info.value.retried
    assert slept == [1.0, 2.0]
    assert message.startswith(
        "endorse: the peers cannot yet satisfy the endorsement policy: the gateway at "
        "127.0.0.1:7051 "
    ), message
    assert "after 3 attempts over 3 s" in message
    assert "majority of the organizations' peers are running" in message
    assert "gossip endpoints" in message
    down = GatewayError("connection reset", code="UNAVAILABLE")
    with pytest.raises(LedgerUnavailable) as other:
        retrying(lambda: (_ for _ in ()).throw(down), "submit", Backoff(attempts=2),
                 slept.append, gateway="127.0.0.1:7051")  # fmt: skip
    assert str(other.value).startswith(
        "submit: Fabric gateway at 127.0.0.1:7051 unavailable after 2 attempts"
    )


def _refused_by(*msps: str) -> EndorseError:
    message = "chaincode response 500, selection.not_announced: org1 announced no ok update"
    return EndorseError(
        "failed to endorse transaction, see attached details for more info", code="ABORTED",
        details=tuple((f"peer0.{msp}:7051", msp, message) for msp in msps),
    )  # fmt: skip


def test_a_refusal_by_a_lagging_peer_of_another_org_is_endorsed_again() -> None:
    """Peers commit a block milliseconds apart: another org's peer may refuse a selection of an
    update it has not committed yet (seen in a real-network run). The writer's own peer, which
    delivered the update, did not refuse: endorse again after a short wait."""
    outcomes: list[Exception | str] = [_refused_by("org2"), _refused_by("org3"), "endorsed"]

    def endorse() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    slept: list[float] = []
    assert while_others_lag(endorse, "org1", slept.append) == "endorsed"
    assert slept == list(LAG_DELAYS[:2])


def test_a_refusal_by_the_writer_s_own_peer_or_a_persisting_one_is_final() -> None:
    slept: list[float] = []
    own = _refused_by("org1", "org2")
    with pytest.raises(EndorseError) as info:
        while_others_lag(lambda: (_ for _ in ()).throw(own), "org1", slept.append)
    assert info.value is own
    assert slept == []  # the writer's own peer refused: no lag to wait out
    assert refusal(own) is not None
    lagging = _refused_by("org2")
    with pytest.raises(EndorseError):
        while_others_lag(lambda: (_ for _ in ()).throw(lagging), "org1", slept.append)
    assert slept == list(LAG_DELAYS)  # bounded: ~1.5 s in all
    not_a_rule = EndorseError("peer down", code="UNAVAILABLE", details=(("p", "org2", "eof"),))
    assert not refused_by_others_only(not_a_rule, "org1")
