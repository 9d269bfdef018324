"""Issue 12, point 5: a member sending share boxes that do not open cannot veto a secure round.

Honest organizations accuse it in their masked input and leave its pairwise mask out; the
aggregator leaves it out of the sum (as dropped before masking: only its mask key may be
rebuilt, never its self-mask seed), names it with its accusers, and the sum is exactly the
honest survivors'. Where too few holders remain, the round aborts and still names it.
"""

from __future__ import annotations

import numpy as np
import pytest
from secagg_harness import COLLECTING, Round, make_config, plain_weighted_sum, random_updates

from fedchain.errors import ProtocolError, TooManyDropouts
from fedchain.secagg import AggregateResult, MaskedInput, RoundConfig, ShareBundle, Stage
from fedchain.secagg.disputes import settle
from fedchain.secagg.server import ShareKind


def _garbage(bundle: ShareBundle, to: set[str] | None = None) -> ShareBundle:
    """``bundle`` with the boxes for ``to`` (all if None) made unopenable (one bit flipped)."""
    return ShareBundle(
        {v: (bytes([box[0] ^ 1]) + box[1:]) if to is None or v in to else box
         for v, box in bundle.ciphertexts.items()}
    )  # fmt: skip


def _drive(
    rnd: Round, bad: str, to: set[str] | None = None, drops: frozenset[str] = frozenset()
) -> AggregateResult:
    """Run ``rnd`` where ``bad`` garbles its share boxes (to ``to``); ``drops`` die before
    masking."""
    rnd.start()
    for stage in COLLECTING[:-1]:
        silent = drops if stage is Stage.COLLECT_MASKED else frozenset()
        for org, reply in rnd.replies(silent).items():
            if org == bad and isinstance(reply, ShareBundle):
                reply = _garbage(reply, to)
            rnd.server.receive(org, reply)
        rnd.outbox = rnd.server.advance()
    return rnd.finish()


def _run(cfg: RoundConfig, bad: str, to: set[str] | None = None) -> tuple[Round, AggregateResult]:
    rnd = Round(cfg, random_updates(cfg))
    return rnd, _drive(rnd, bad, to)


def _check_sum(rnd: Round, result: AggregateResult, honest: list[str]) -> None:
    want_sum, want_weight = plain_weighted_sum(rnd.config, rnd.updates, honest)
    assert result.contributors == tuple(sorted(honest))
    assert result.total_weight == want_weight
    bound = result.error_bound
    assert np.max(np.abs(result.weighted_sum - want_sum)) <= bound


@pytest.mark.parametrize(("n", "degree"), [(3, None), (5, None), (8, 4)])
def test_a_member_garbling_every_box_is_left_out_and_the_round_completes(
    n: int, degree: int | None
) -> None:
    cfg = make_config(n, degree=degree, dim=6)
    rnd, result = _run(cfg, "org1")
    honest = [o for o in cfg.participants if o != "org1"]
    _check_sum(rnd, result, honest)
    reason = result.misbehaving["org1"]
    accusers = sorted(cfg.neighbours["org1"])
    assert f"did not open for {', '.join(accusers)}" in reason
    assert set(result.misbehaving) == {"org1"}
    # the Bonawitz invariant: never both kinds of share of one organization
    kinds = rnd.server.share_kinds()
    assert ShareKind.SELF_SEED not in kinds.get("org1", frozenset())
    assert all(len(k) == 1 for k in kinds.values())


def test_a_lone_dispute_costs_both_sides_and_rebuilds_only_mask_keys() -> None:
    cfg = make_config(5, dim=6)  # all-to-all, t = 3
    rnd, result = _run(cfg, "org1", to={"org0"})  # org2..org4 got good boxes and masked with it
    _check_sum(rnd, result, ["org2", "org3", "org4"])
    out = result.misbehaving
    assert set(out) == {"org0", "org1"}  # one accusation cannot tell who lied
    assert "did not open for org0" in out["org1"]
    assert "it accused org1" in out["org0"]
    kinds = rnd.server.share_kinds()
    assert kinds["org1"] == kinds["org0"] == {ShareKind.MASK_KEY}


def test_too_few_holders_left_aborts_and_names_the_member() -> None:
    cfg = make_config(5, dim=6)  # t = 3
    rnd = Round(cfg, random_updates(cfg))
    with pytest.raises(TooManyDropouts):
        _drive(rnd, "org1", drops=frozenset({"org2", "org3"}))  # org0, org4 left: fewer than t
    assert "accused by them" in rnd.server.misbehaving["org1"]
    assert not rnd.server.share_kinds()  # nothing was revealed


def test_a_false_accusation_costs_the_accuser() -> None:
    cfg = make_config(5, dim=6)
    rnd = Round(cfg, random_updates(cfg))
    rnd.start()
    for _ in COLLECTING[:-1]:
        for org, reply in rnd.replies().items():
            if org == "org1" and isinstance(reply, MaskedInput):
                # org1 claims that every neighbour's box failed (it masked with them all)
                reply = MaskedInput(reply.masked, tuple(sorted(cfg.neighbours["org1"])))
            rnd.server.receive(org, reply)
        rnd.outbox = rnd.server.advance()
    result = rnd.finish()
    assert set(result.misbehaving) == {"org1"}
    assert "it accused org0, org2, org3, org4" in result.misbehaving["org1"]
    _check_sum(rnd, result, ["org0", "org2", "org3", "org4"])


def test_accusing_an_organization_that_sent_no_box_is_refused() -> None:
    cfg = make_config(5, dim=6)
    rnd = Round(cfg, random_updates(cfg))
    rnd.start()
    for _ in COLLECTING[:2]:
        rnd.step()
    masked = rnd.replies()["org0"]
    assert isinstance(masked, MaskedInput)
    with pytest.raises(ProtocolError, match="accused"):
        rnd.server.receive("org0", MaskedInput(masked.masked, ("org0",)))


def test_settling_disputes() -> None:
    # one against many: the one
    assert set(settle({"a": ["m"], "b": ["m"], "c": ["m"]})) == {"m"}
    assert set(settle({"m": ["a", "b", "c"]})) == {"m"}
    # a lone dispute cannot be decided: both
    assert set(settle({"a": ["b"]})) == {"a", "b"}
    assert settle({}) == {}
