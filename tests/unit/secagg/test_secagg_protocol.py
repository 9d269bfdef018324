"""End-to-end properties of the sans-IO protocol: correct sums under dropouts, clean failures.

The oracle below restates the dropout rule of docs/secagg.md independently of the server code:
an organization that shared its secrets needs t live holders (itself plus neighbours) at every
later stage, at least t masked vectors must arrive, and a client whose neighbourhood is already
too small when keys are relayed drops itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from secagg_harness import Round, drive, make_config, plain_weighted_sum, random_updates, run_round

from fedchain.errors import TooManyDropouts
from fedchain.secagg import LocalUpdate, MaskedInput, RoundConfig, Stage
from fedchain.secagg.graph import effective_degree

Drops = dict[Stage, frozenset[str]]


def expected_contributors(
    cfg: RoundConfig, drops: Mapping[Stage, Collection[str]]
) -> set[str] | None:
    """Who ends up in the sum, or None if the round must fail with TooManyDropouts."""
    t = cfg.threshold

    def held(u: str, alive: set[str]) -> bool:
        return len(cfg.holders(u) & alive) >= t

    u1 = set(cfg.participants) - set(drops.get(Stage.ADVERTISE_KEYS, ()))
    if len(u1) < t:
        return None
    u2 = {u for u in u1 - set(drops.get(Stage.SHARE_KEYS, ())) if held(u, u1)}
    if len(u2) < t or not all(held(u, u2) for u in u2):
        return None
    u3 = u2 - set(drops.get(Stage.COLLECT_MASKED, ()))
    if len(u3) < t or not all(held(u, u3) for u in u2):
        return None
    u4 = u3 - set(drops.get(Stage.UNMASK, ()))
    return u3 if all(held(u, u4) for u in u2) else None


@st.composite
def configs(draw: st.DrawFn) -> RoundConfig:
    n = draw(st.integers(3, 8))
    degree = draw(st.one_of(st.none(), st.integers(1, n - 1)))
    if degree is not None and degree < n - 1 and degree % 2 == 1 and n % 2 == 1:
        degree += 1
    k = effective_degree(n, degree)
    t = draw(st.integers((k + 1) // 2 + 1, k + 1))
    clip = float(np.float32(draw(st.floats(0.01, 100.0))))
    return make_config(
        n, threshold=t, degree=degree, dim=draw(st.integers(1, 50)), clip=clip,
        max_weight=draw(st.integers(1, 1000)), stochastic=draw(st.booleans()),
    )  # fmt: skip


@st.composite
def updates_for(draw: st.DrawFn, cfg: RoundConfig) -> dict[str, LocalUpdate]:
    values = st.floats(-cfg.clip, cfg.clip, width=32)
    return {
        org: LocalUpdate(
            draw(hnp.arrays(np.float32, cfg.dim, elements=values)),
            draw(st.integers(1, cfg.max_weight)),
        )
        for org in cfg.participants
    }


def check_outcome(
    cfg: RoundConfig, updates: dict[str, LocalUpdate], drops: Drops, seed: int
) -> None:
    expected = expected_contributors(cfg, drops)
    event("fails" if expected is None else "succeeds")
    rnd = Round(cfg, updates, seed)
    if expected is None:
        with pytest.raises(TooManyDropouts, match="nothing was revealed"):
            drive(rnd, drops)
        assert rnd.server.stage is Stage.FAILED
    else:
        result = drive(rnd, drops)
        reference, weight = plain_weighted_sum(cfg, updates, expected)
        assert result.contributors == tuple(sorted(expected))
        assert result.total_weight == weight
        assert np.all(np.abs(result.weighted_sum - reference) <= result.error_bound)
        assert set(result.dropouts[Stage.COLLECT_MASKED]) <= set(
            drops.get(Stage.COLLECT_MASKED, ())
        )
    # Whatever happened, the aggregator never got both kinds of share for one organization.
    assert all(len(kinds) == 1 for kinds in rnd.server.share_kinds().values())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_sum_is_exact_within_bound_for_dropouts_before_and_after_masking(
    data: st.DataObject, seed: int
) -> None:
    cfg = data.draw(configs())
    updates = data.draw(updates_for(cfg))
    orgs = list(cfg.participants)
    spare = cfg.n - cfg.threshold + 1  # one more than could ever be tolerated
    before = data.draw(st.frozensets(st.sampled_from(orgs), max_size=spare))
    after = data.draw(st.frozensets(st.sampled_from(orgs), max_size=spare)) - before
    check_outcome(cfg, updates, {Stage.COLLECT_MASKED: before, Stage.UNMASK: after}, seed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_dropouts_at_every_stage(data: st.DataObject, seed: int) -> None:
    cfg = data.draw(configs())
    updates = random_updates(cfg, seed)
    remaining = list(cfg.participants)
    drops: Drops = {}
    for stage in (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.COLLECT_MASKED, Stage.UNMASK):
        drops[stage] = data.draw(st.frozensets(st.sampled_from(remaining), max_size=1))
        remaining = [o for o in remaining if o not in drops[stage]] or remaining
    check_outcome(cfg, updates, drops, seed)


def test_early_dropouts_are_recorded_by_stage_and_left_out() -> None:
    cfg = make_config(9, dim=6)  # all-to-all, t = 5 of 9
    updates = random_updates(cfg, 5)
    drops = {
        Stage.ADVERTISE_KEYS: ["org1"], Stage.SHARE_KEYS: ["org4"],
        Stage.COLLECT_MASKED: ["org6"], Stage.UNMASK: ["org7"],
    }  # fmt: skip
    assert expected_contributors(cfg, drops) == {"org0", "org2", "org3", "org5", "org7", "org8"}
    _, result = run_round(cfg, updates, drops)
    assert result.dropouts == {
        Stage.ADVERTISE_KEYS: ("org1",), Stage.SHARE_KEYS: ("org4",),
        Stage.COLLECT_MASKED: ("org6",), Stage.UNMASK: ("org7",),
    }  # fmt: skip
    reference, weight = plain_weighted_sum(cfg, updates, result.contributors)
    assert np.all(np.abs(result.weighted_sum - reference) <= result.error_bound)
    np.testing.assert_allclose(result.mean(), reference / weight, atol=result.error_bound / weight)


def test_too_many_dropouts_fail_before_any_reconstruction() -> None:
    cfg = make_config(5, dim=3)  # t = 3 of 5
    rnd = Round(cfg, random_updates(cfg))
    with pytest.raises(TooManyDropouts, match="unmask"):
        drive(rnd, {Stage.UNMASK: ["org0", "org1", "org2"]})
    assert rnd.server.stage is Stage.FAILED
    assert all(len(kinds) == 1 for kinds in rnd.server.share_kinds().values())
    with pytest.raises(Exception, match="not allowed"):
        rnd.server.finish()


def test_masked_vectors_travel_as_uint32_the_size_of_a_float32_model() -> None:
    cfg = make_config(4, dim=1000)
    updates = random_updates(cfg, 2)
    rnd = Round(cfg, updates)
    rnd.start()
    rnd.step()
    rnd.step()
    replies = rnd.replies()
    for org, reply in replies.items():
        assert isinstance(reply, MaskedInput)
        wire = reply.to_bytes()
        assert len(wire) == 4 * (cfg.dim + 1)  # the float32 model plus one weight word
        plain = cfg.quantizer.quantize_with_noise(
            updates[org].vector,
            updates[org].weight,
            None if not cfg.stochastic else np.zeros(cfg.dim),
        )
        assert np.mean(reply.masked == plain) < 0.01  # masked: nothing like the plain encoding
        rnd.server.receive(org, MaskedInput.from_bytes(wire))  # what travelled is what is summed
    rnd.outbox = rnd.server.advance()
    result = rnd.finish()
    reference, _ = plain_weighted_sum(cfg, updates, cfg.participants)
    assert np.all(np.abs(result.weighted_sum - reference) <= result.error_bound)


def test_pending_lists_who_may_still_reply() -> None:
    cfg = make_config(4, dim=2)  # t = 3
    rnd = Round(cfg, random_updates(cfg))
    assert rnd.server.pending() == frozenset()
    rnd.start()
    assert rnd.server.pending() == set(cfg.participants)
    replies = rnd.replies()
    rnd.server.receive("org2", replies["org2"])
    assert rnd.server.pending() == {"org0", "org1", "org3"}
    for org in ("org0", "org1"):
        rnd.server.receive(org, replies[org])
    rnd.outbox = rnd.server.advance()  # org3 never advertised: it is no longer expected
    assert rnd.server.pending() == {"org0", "org1", "org2"}
    rnd.server.receive("org1", rnd.replies()["org1"])
    assert rnd.server.pending() == {"org0", "org2"}


def test_sessions_are_reproducible_from_their_entropy() -> None:
    cfg = make_config(4, dim=7)
    updates = random_updates(cfg, 9)
    _, a = run_round(cfg, updates, seed=1)
    _, b = run_round(cfg, updates, seed=1)
    np.testing.assert_array_equal(a.weighted_sum, b.weighted_sum)
