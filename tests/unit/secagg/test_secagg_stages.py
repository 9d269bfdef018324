"""Every (stage, message kind) pair of both transition tables, on real sessions.

Allowed pairs are fed the genuine message of a live 3-organization round and must move the
session to the table's stage; every other pair must raise StageError and leave it unchanged.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from secagg_harness import COLLECTING, Round, entropy, make_config, random_updates

from fedchain.errors import ProtocolError, StageError
from fedchain.secagg import (
    CLIENT_TRANSITIONS,
    SERVER_TRANSITIONS,
    Abort,
    ClientMessage,
    ClientSession,
    Kind,
    ServerMessage,
    Stage,
    UnmaskRequest,
)
from fedchain.secagg.stages import CLIENT_INPUTS, SERVER_INPUTS, TERMINAL

CONFIG = make_config(3, dim=4)
UPDATES = random_updates(CONFIG, seed=3)
ME = "org0"
# A client is never *in* UNMASK: answering the unmask request ends its part (DONE).
CLIENT_STAGES = [s for s in Stage if s is not Stage.UNMASK]
CLIENT_PATH = [Kind.SETUP_REQUEST, Kind.KEYS_BROADCAST, Kind.SHARES_DELIVERY, Kind.UNMASK_REQUEST]


def reference_transcript() -> tuple[dict[Kind, ServerMessage], dict[Kind, ClientMessage]]:
    """The messages ``ME`` receives and sends in a complete round, by kind."""
    rnd = Round(CONFIG, UPDATES)
    rnd.start()
    to_me: dict[Kind, ServerMessage] = {}
    from_me: dict[Kind, ClientMessage] = {}
    for stage in COLLECTING:
        to_me[rnd.outbox[ME].kind] = rnd.outbox[ME]
        replies = rnd.replies()
        from_me[replies[ME].kind] = replies[ME]
        for org, reply in replies.items():
            rnd.server.receive(org, reply)
        if stage is Stage.UNMASK:
            rnd.server.finish()
        else:
            rnd.outbox = rnd.server.advance()
    to_me[Kind.ABORT] = Abort("operator stopped the round")
    return to_me, from_me


TO_ME, FROM_ME = reference_transcript()


def client_at(stage: Stage) -> ClientSession:
    client = ClientSession(ME, entropy=entropy(ME))
    path = [Kind.ABORT] if stage is Stage.FAILED else CLIENT_PATH
    for kind in path:
        if client.stage is stage:
            break
        client.handle(TO_ME[kind], UPDATES[ME])
    assert client.stage is stage
    return client


def server_at(stage: Stage) -> Round:
    """A round whose server is in ``stage``; ME's reply of that stage is still outstanding."""
    rnd = Round(CONFIG, UPDATES)
    if stage is Stage.SETUP:
        return rnd
    rnd.start()
    if stage is Stage.FAILED:
        rnd.server.abort("test")
    for current in COLLECTING:
        if rnd.server.stage is stage:
            break
        if current is Stage.UNMASK:
            rnd.finish()
        else:
            rnd.step()
    assert rnd.server.stage is stage
    if stage not in TERMINAL:
        for org, reply in rnd.replies().items():
            if org != ME:
                rnd.server.receive(org, reply)
    return rnd


@pytest.mark.parametrize(
    ("stage", "kind"), list(itertools.product(CLIENT_STAGES, sorted(CLIENT_INPUTS, key=str)))
)
def test_client_stage_message_pair(stage: Stage, kind: Kind) -> None:
    client = client_at(stage)
    allowed = CLIENT_TRANSITIONS.get((stage, kind))
    if allowed is None:
        with pytest.raises(StageError):
            client.handle(TO_ME[kind], UPDATES[ME])
        assert client.stage is stage
    else:
        reply = client.handle(TO_ME[kind], UPDATES[ME])
        assert client.stage is allowed
        if kind is Kind.ABORT:
            assert reply is None
        else:  # deterministic sessions reproduce the reference reply exactly
            assert reply is not None
            assert type(reply) is type(FROM_ME[reply.kind])
            if reply.kind is not Kind.MASKED_INPUT:
                assert reply == FROM_ME[reply.kind]


def _server_input(rnd: Round, kind: Kind) -> object:
    server = rnd.server
    if kind is Kind.START:
        return server.start()
    if kind is Kind.ADVANCE:
        return server.advance()
    if kind is Kind.FINISH:
        return server.finish()
    if kind is Kind.ABORT:
        return server.abort("operator")
    server.receive(ME, FROM_ME[kind])
    return None


@pytest.mark.parametrize(
    ("stage", "kind"), list(itertools.product(Stage, sorted(SERVER_INPUTS, key=str)))
)
def test_server_stage_input_pair(stage: Stage, kind: Kind) -> None:
    rnd = server_at(stage)
    allowed = SERVER_TRANSITIONS.get((stage, kind))
    if allowed is None:
        with pytest.raises(StageError):
            _server_input(rnd, kind)
        assert rnd.server.stage is stage
    else:
        out = _server_input(rnd, kind)
        assert rnd.server.stage is allowed
        if kind is Kind.FINISH:
            assert np.all(np.isfinite(out.weighted_sum))  # type: ignore[attr-defined]
        elif kind in (Kind.START, Kind.ADVANCE):
            assert isinstance(out, dict)
            assert out  # someone is addressed
        elif kind is Kind.ABORT:  # everyone contacted so far is told (nobody before START)
            assert isinstance(out, dict)
            assert bool(out) == (stage is not Stage.SETUP)
        else:  # a reply was taken: the same reply again is a duplicate
            with pytest.raises(ProtocolError, match="already replied"):
                rnd.server.receive(ME, FROM_ME[kind])


def test_tables_only_use_their_own_inputs_and_terminal_stages_accept_nothing() -> None:
    assert {k for _, k in CLIENT_TRANSITIONS} <= CLIENT_INPUTS
    assert {k for _, k in SERVER_TRANSITIONS} <= SERVER_INPUTS
    assert not [pair for pair in [*CLIENT_TRANSITIONS, *SERVER_TRANSITIONS] if pair[0] in TERMINAL]
    assert Stage.UNMASK not in CLIENT_TRANSITIONS.values()
    assert Stage.UNMASK not in {s for s, _ in CLIENT_TRANSITIONS}


def test_a_failed_client_step_moves_to_failed_and_forgets() -> None:
    client = client_at(Stage.COLLECT_MASKED)
    bad = UnmaskRequest(survivors=(ME, "org1"), dropped=("org1",))
    with pytest.raises(Exception, match="both kinds"):
        client.handle(bad)
    assert client.stage is Stage.FAILED
    with pytest.raises(StageError):  # the genuine request is not answered afterwards either
        client.handle(TO_ME[Kind.UNMASK_REQUEST])
