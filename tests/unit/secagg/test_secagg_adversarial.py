"""A misbehaving aggregator or organization is caught, and the honest side reveals nothing more."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from secagg_harness import Round, entropy, make_config, random_updates

from fedchain.errors import KeyMismatch, ProtocolError, StageError, TooManyDropouts, UpdateRejected
from fedchain.secagg import (
    ClientSession,
    KeyAdvert,
    KeysBroadcast,
    LocalUpdate,
    MaskedInput,
    PublicKeys,
    RoundConfig,
    SetupRequest,
    ShareBundle,
    SharesDelivery,
    Stage,
    UnmaskReply,
    UnmaskRequest,
    verify_keys,
)
from fedchain.secagg.keys import x25519_public

CFG = make_config(5, dim=4)  # all-to-all, t = 3


def round_at(stage: Stage, cfg: RoundConfig = CFG) -> Round:
    """A round whose server has just opened ``stage`` (all replies so far delivered)."""
    rnd = Round(cfg, random_updates(cfg))
    rnd.start()
    while rnd.server.stage is not stage:
        rnd.step()
    return rnd


# -- an aggregator that lies to clients ---------------------------------------------------------


def test_client_refuses_to_reveal_both_kinds_of_share_for_one_org() -> None:
    rnd = round_at(Stage.UNMASK)
    client = rnd.clients["org0"]
    lie = UnmaskRequest(survivors=("org0", "org1", "org2"), dropped=("org2",))
    with pytest.raises(ProtocolError, match=r"both kinds of share for \['org2'\]"):
        client.handle(lie)
    assert client.stage is Stage.FAILED
    with pytest.raises(StageError):  # and it answers nothing else in this round
        client.handle(rnd.outbox["org0"])


def test_client_answers_one_unmask_request_only() -> None:
    rnd = round_at(Stage.UNMASK)
    client = rnd.clients["org0"]
    first = client.handle(UnmaskRequest(survivors=("org0", "org1"), dropped=()))
    assert isinstance(first, UnmaskReply)
    assert set(first.key_shares) == set()
    with pytest.raises(StageError):  # "now org1 dropped, please" is not answered
        client.handle(UnmaskRequest(survivors=("org0",), dropped=("org1",)))


@pytest.mark.parametrize(
    ("survivors", "dropped", "match"),
    [
        (("org1", "org2"), ("org0",), "not listed as a survivor"),
        (("org0", "org0"), (), "repeats"),
        (("org0", "mallory"), (), "no shares held"),
    ],
)
def test_client_refuses_malformed_unmask_requests(
    survivors: tuple[str, ...], dropped: tuple[str, ...], match: str
) -> None:
    client = round_at(Stage.UNMASK).clients["org0"]
    with pytest.raises(ProtocolError, match=match):
        client.handle(UnmaskRequest(survivors=survivors, dropped=dropped))
    assert client.stage is Stage.FAILED


def test_substituted_keys_are_caught_against_the_ledger_copy() -> None:
    rnd = round_at(Stage.SHARE_KEYS)
    ledger = {org: c.public_keys for org, c in rnd.clients.items()}  # what owners published
    relayed = rnd.outbox["org0"]
    assert isinstance(relayed, KeysBroadcast)
    verify_keys(relayed.keys, ledger)  # the honest relay passes
    mitm = PublicKeys(x25519_public(b"\x01" * 32), x25519_public(b"\x02" * 32))
    forged = KeysBroadcast({**relayed.keys, "org1": mitm})
    with pytest.raises(KeyMismatch, match="org1"):
        verify_keys(forged.keys, ledger)


def test_client_refuses_keys_for_non_neighbours_and_reflected_keys() -> None:
    cfg = make_config(8, degree=4, dim=2)
    rnd = round_at(Stage.SHARE_KEYS, cfg)
    me = "org0"
    stranger = next(o for o in cfg.participants if o != me and o not in cfg.neighbours[me])
    stranger_keys = rnd.server.public_keys[stranger]
    relayed = rnd.outbox[me]
    assert isinstance(relayed, KeysBroadcast)
    fresh = ClientSession(me, entropy=entropy(me))
    fresh.handle(SetupRequest(cfg))
    with pytest.raises(ProtocolError, match="non-neighbours"):
        fresh.handle(KeysBroadcast({**relayed.keys, stranger: stranger_keys}))
    again = ClientSession(me, entropy=entropy(me))
    again.handle(SetupRequest(cfg))
    neighbour = sorted(relayed.keys)[0]
    with pytest.raises(ProtocolError, match="repeat"):  # my own key handed back to me
        again.handle(KeysBroadcast({**relayed.keys, neighbour: again.public_keys}))


def test_client_with_too_few_live_neighbours_drops_itself() -> None:
    rnd = round_at(Stage.SHARE_KEYS)
    relayed = rnd.outbox["org0"]
    assert isinstance(relayed, KeysBroadcast)
    only_one = KeysBroadcast({"org1": relayed.keys["org1"]})  # t = 3 needs two neighbours
    with pytest.raises(TooManyDropouts):
        rnd.clients["org0"].handle(only_one)
    assert rnd.clients["org0"].stage is Stage.FAILED


def test_swapped_or_forged_share_boxes_do_not_open_and_are_accused() -> None:
    rnd = round_at(Stage.COLLECT_MASKED)
    delivery = rnd.outbox["org0"]
    assert isinstance(delivery, SharesDelivery)
    boxes = dict(delivery.ciphertexts)
    boxes["org1"], boxes["org2"] = boxes["org2"], boxes["org1"]
    reply = rnd.clients["org0"].handle(SharesDelivery(boxes), rnd.updates["org0"])
    assert isinstance(reply, MaskedInput)
    assert reply.accused == ("org1", "org2")  # neither opens; the session goes on
    assert rnd.clients["org0"].stage is not Stage.FAILED
    other = rnd.outbox["org3"]
    assert isinstance(other, SharesDelivery)  # a box meant for org3, relabelled for org4
    wrong = {**rnd.outbox["org4"].ciphertexts, "org1": other.ciphertexts["org1"]}  # type: ignore[union-attr]
    reply = rnd.clients["org4"].handle(SharesDelivery(wrong), rnd.updates["org4"])
    assert isinstance(reply, MaskedInput)
    assert reply.accused == ("org1",)


def test_clients_given_different_configurations_cannot_agree_on_keys() -> None:
    rnd = Round(CFG, random_updates(CFG))
    rnd.start()
    rnd.outbox["org0"] = SetupRequest(dataclasses.replace(CFG, clip=2.0))  # equivocation
    rnd.step()
    rnd.step()
    for org in ("org1", "org2"):  # org0's boxes were sealed for another configuration
        reply = rnd.clients[org].handle(rnd.outbox[org], rnd.updates[org])
        assert isinstance(reply, MaskedInput)
        assert reply.accused == ("org0",)


def test_client_refuses_a_config_that_does_not_include_it() -> None:
    client = ClientSession("outsider", entropy=entropy("outsider"))
    with pytest.raises(ProtocolError, match="not a participant"):
        client.handle(SetupRequest(CFG))


# -- organizations that misbehave toward the aggregator --------------------------------------


def test_server_rejects_replies_from_the_wrong_org_or_twice() -> None:
    rnd = round_at(Stage.ADVERTISE_KEYS)
    replies = rnd.replies()
    with pytest.raises(ProtocolError, match="not expected"):
        rnd.server.receive("mallory", replies["org0"])
    rnd.server.receive("org0", replies["org0"])
    with pytest.raises(ProtocolError, match="already replied"):
        rnd.server.receive("org0", replies["org0"])
    with pytest.raises(ProtocolError, match="already in use"):  # org1 copies org0's keys
        rnd.server.receive("org1", KeyAdvert(rnd.clients["org0"].public_keys))
    assert rnd.server.stage is Stage.ADVERTISE_KEYS  # a bad reply does not end the round


def test_server_rejects_bundles_not_addressed_to_the_live_neighbours() -> None:
    rnd = round_at(Stage.SHARE_KEYS)
    bundle = rnd.replies()["org0"]
    assert isinstance(bundle, ShareBundle)
    partial = {k: v for k, v in bundle.ciphertexts.items() if k != "org1"}
    with pytest.raises(ProtocolError, match="exactly its live neighbours"):
        rnd.server.receive("org0", ShareBundle(partial))
    short = {k: v[:-1] for k, v in bundle.ciphertexts.items()}
    with pytest.raises(ProtocolError, match="wrong size"):
        rnd.server.receive("org0", ShareBundle(short))


@pytest.mark.parametrize(
    "masked",
    [np.zeros(CFG.dim, dtype=np.uint32), np.zeros(CFG.dim + 1, dtype=np.int64)],
    ids=["short", "int64"],
)
def test_server_rejects_masked_vectors_of_the_wrong_shape_or_type(masked: np.ndarray) -> None:
    rnd = round_at(Stage.COLLECT_MASKED)
    with pytest.raises(ProtocolError, match="wrong type or shape"):
        rnd.server.receive("org0", MaskedInput(masked))
    with pytest.raises(ProtocolError):
        MaskedInput.from_bytes(b"\x00" * 5)


def test_server_rejects_unmask_replies_that_do_not_match_the_request() -> None:
    rnd = round_at(Stage.UNMASK)
    reply = rnd.replies()["org0"]
    assert isinstance(reply, UnmaskReply)
    extra = UnmaskReply(self_shares=reply.self_shares, key_shares={"org1": b"\x00" * 66})
    with pytest.raises(ProtocolError, match="exactly what was asked"):
        rnd.server.receive("org0", extra)
    too_big = {o: b"\xff" * 66 for o in reply.self_shares}
    with pytest.raises(ProtocolError, match="malformed share"):
        rnd.server.receive("org0", UnmaskReply(self_shares=too_big, key_shares=reply.key_shares))
    assert "org0" in rnd.server.pending()
    rnd.server.receive("org0", reply)  # the genuine reply is still taken
    assert "org0" not in rnd.server.pending()


def test_a_corrupted_share_is_detected_when_more_than_t_arrive() -> None:
    rnd = round_at(Stage.UNMASK)
    replies = rnd.replies()
    bad = replies["org0"]
    assert isinstance(bad, UnmaskReply)
    flipped = {o: bytes([s[0], s[1] ^ 1, *s[2:]]) for o, s in bad.self_shares.items()}
    replies["org0"] = UnmaskReply(self_shares=flipped, key_shares=bad.key_shares)
    for org, reply in replies.items():
        rnd.server.receive(org, reply)
    with pytest.raises(ProtocolError, match="inconsistent"):
        rnd.server.finish()
    assert rnd.server.stage is Stage.FAILED


def test_a_wrong_mask_key_share_is_caught_by_the_public_key_check() -> None:
    rnd = Round(CFG, random_updates(CFG))
    rnd.start()
    rnd.step()
    rnd.step()
    rnd.step(silent={"org4"})  # org4 drops before masking: its mask key is rebuilt
    replies = rnd.replies(silent={"org1"})  # exactly t = 3 holders answer: no spare share
    bad = replies["org0"]
    assert isinstance(bad, UnmaskReply)
    forged = {
        o: (int.from_bytes(s, "big") + 1).to_bytes(66, "big") for o, s in bad.key_shares.items()
    }
    replies["org0"] = UnmaskReply(self_shares=bad.self_shares, key_shares=forged)
    for org, reply in replies.items():
        rnd.server.receive(org, reply)
    with pytest.raises(ProtocolError, match="does not match its public key"):
        rnd.server.finish()


@pytest.mark.parametrize(
    "update",
    [
        LocalUpdate(np.array([1.0, np.nan, 0.0, 0.0]), 5),
        LocalUpdate(np.zeros(3), 5),
        LocalUpdate(np.zeros(4), 0),
        LocalUpdate(np.zeros(4), CFG.max_weight + 1),
    ],
    ids=["nan", "wrong-size", "zero-weight", "weight-too-large"],
)
def test_client_rejects_its_own_malformed_update(update: LocalUpdate) -> None:
    rnd = round_at(Stage.COLLECT_MASKED)
    with pytest.raises(UpdateRejected) as info:
        rnd.clients["org0"].handle(rnd.outbox["org0"], update)
    assert info.value.org == "org0"
    assert rnd.clients["org0"].stage is Stage.FAILED


def test_shares_delivery_without_an_update_is_a_local_bug() -> None:
    rnd = round_at(Stage.COLLECT_MASKED)
    with pytest.raises(Exception, match="needs the local update"):
        rnd.clients["org0"].handle(rnd.outbox["org0"])


def test_server_rejects_low_order_public_keys() -> None:
    rnd = round_at(Stage.ADVERTISE_KEYS)
    zero_point = PublicKeys(bytes(32), x25519_public(b"\x05" * 32))
    with pytest.raises(ProtocolError, match="unusable"):
        rnd.server.receive("org1", KeyAdvert(zero_point))
    assert "org1" not in rnd.server.public_keys


def test_public_keys_stay_readable_after_the_secrets_are_gone() -> None:
    rnd = round_at(Stage.UNMASK)
    client = rnd.clients["org0"]
    published = client.public_keys
    client.handle(rnd.outbox["org0"])
    assert client.stage is Stage.DONE
    assert client.public_keys == published == rnd.server.public_keys["org0"]
