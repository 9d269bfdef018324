"""Unit tests of the secagg building blocks: PRG, key agreement, share boxes, Shamir, graph."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import ConfigError, KeyMismatch, ProtocolError, TooManyDropouts
from fedchain.secagg import PublicKeys, RoundConfig, verify_keys
from fedchain.secagg.graph import neighbour_graph, ring_order
from fedchain.secagg.keys import pairwise_seed, share_key, x25519_public, x25519_shared
from fedchain.secagg.prg import Drbg, apply_masks, expand_mask
from fedchain.secagg.shamir import PRIME, reconstruct, split, split_with_coefficients
from fedchain.secagg.sharebox import open_shares, seal_shares

SEED = hashlib.sha256(b"seed").digest()


def key(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


# -- PRG ------------------------------------------------------------------------------------


def test_mask_is_aes256_ctr_keystream_from_a_zero_counter() -> None:
    # Independent construction: AES-256-ECB of the counter blocks 0 and 1.
    ecb = Cipher(algorithms.AES(SEED), modes.ECB()).encryptor()
    blocks = ecb.update(bytes(16) + (1).to_bytes(16, "big")) + ecb.finalize()
    assert expand_mask(SEED, 8).tobytes() == np.frombuffer(blocks, dtype="<u4").tobytes()


def test_chunked_masking_equals_whole_masks_across_chunk_boundaries() -> None:
    size = (1 << 18) * 2 + 3  # > two 1 MiB chunks, not a multiple of the chunk
    seeds = [(key("a"), 1), (key("b"), -1), (key("c"), 1)]
    acc = np.arange(size, dtype=np.uint32)
    apply_masks(acc, seeds)
    expected = np.arange(size, dtype=np.uint32)
    for seed, sign in seeds:
        mask = expand_mask(seed, size)
        expected = expected + mask if sign > 0 else expected - mask
    np.testing.assert_array_equal(acc, expected)


def test_adding_and_subtracting_a_mask_restores_the_vector() -> None:
    acc = np.array([0, 1, 2**32 - 1, 7], dtype=np.uint32)
    apply_masks(acc, [(SEED, 1)])
    assert not np.array_equal(acc, [0, 1, 2**32 - 1, 7])
    apply_masks(acc, [(SEED, -1)])
    np.testing.assert_array_equal(acc, [0, 1, 2**32 - 1, 7])


def test_different_seeds_give_different_masks() -> None:
    assert not np.array_equal(expand_mask(key("x"), 64), expand_mask(key("y"), 64))


def test_drbg_below_is_in_range_and_deterministic() -> None:
    a = [Drbg(SEED).below(7) for _ in range(3)]
    drbg = Drbg(SEED)
    values = [drbg.below(7) for _ in range(500)]
    assert set(values) == set(range(7))
    assert a == [Drbg(SEED).below(7)] * 3


# -- key agreement --------------------------------------------------------------------------


def test_x25519_rfc7748_section_6_1() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    alice_pub = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    bob_pub = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert x25519_public(alice).hex() == alice_pub
    assert x25519_public(bob).hex() == bob_pub
    assert x25519_shared(alice, bytes.fromhex(bob_pub)).hex() == shared
    assert x25519_shared(bob, bytes.fromhex(alice_pub)).hex() == shared


def test_low_order_or_malformed_peer_keys_are_the_peers_fault() -> None:
    with pytest.raises(ProtocolError):
        x25519_shared(key("a"), bytes(32))  # the all-zero point gives an all-zero secret
    with pytest.raises(ProtocolError):
        x25519_shared(key("a"), b"short")


def test_pairwise_seed_is_symmetric_and_bound_to_context_and_pair() -> None:
    a, b = key("a"), key("b")
    pa, pb = x25519_public(a), x25519_public(b)
    seed = pairwise_seed(a, pb, b"ctx", "org1", "org2")
    assert seed == pairwise_seed(b, pa, b"ctx", "org2", "org1")
    assert len(seed) == 32
    assert seed != pairwise_seed(a, pb, b"ctx2", "org1", "org2")
    assert seed != pairwise_seed(a, pb, b"ctx", "org1", "org3")


def test_share_keys_differ_by_direction() -> None:
    a, b = key("a"), key("b")
    forward = share_key(a, x25519_public(b), b"ctx", "org1", "org2")
    backward = share_key(b, x25519_public(a), b"ctx", "org2", "org1")
    assert forward != backward
    assert forward == share_key(b, x25519_public(a), b"ctx", "org1", "org2")


def test_sealed_shares_open_only_for_the_right_pair_and_round() -> None:
    a, b, c = key("a"), key("b"), key("c")
    shares = (bytes(range(66)), bytes(range(66, 132)))
    box = seal_shares(a, x25519_public(b), b"ctx", "org1", "org2", shares)
    assert open_shares(b, x25519_public(a), b"ctx", "org1", "org2", box) == shares
    with pytest.raises(ProtocolError):  # relabelled as coming from another organization
        open_shares(b, x25519_public(a), b"ctx", "org3", "org2", box)
    with pytest.raises(ProtocolError):  # another round's context
        open_shares(b, x25519_public(a), b"other", "org1", "org2", box)
    with pytest.raises(ProtocolError):  # a third party cannot open it
        open_shares(c, x25519_public(a), b"ctx", "org1", "org2", box)
    tampered = bytes([box[0] ^ 1]) + box[1:]
    with pytest.raises(ProtocolError):
        open_shares(b, x25519_public(a), b"ctx", "org1", "org2", tampered)


def test_verify_keys_accepts_equal_and_rejects_substituted_keys() -> None:
    k1 = PublicKeys(x25519_public(key("e1")), x25519_public(key("m1")))
    k2 = PublicKeys(x25519_public(key("e2")), x25519_public(key("m2")))
    verify_keys({"org1": k1}, {"org1": k1, "org2": k2})
    swapped = PublicKeys(k1.enc, k2.mask)
    with pytest.raises(KeyMismatch, match="org1"):
        verify_keys({"org1": swapped, "org2": k2}, {"org1": k1, "org2": k2})
    with pytest.raises(KeyMismatch, match="org3"):
        verify_keys({"org3": k1}, {"org1": k1})
    assert PublicKeys.from_bytes(k1.to_bytes()) == k1
    with pytest.raises(ProtocolError):
        PublicKeys.from_bytes(b"\x00" * 63)


# -- Shamir ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=32),
    t=st.integers(1, 6),
    extra=st.integers(0, 3),
    seed=st.binary(min_size=32, max_size=32),
)
def test_any_t_shares_reconstruct_the_secret(
    secret: bytes, t: int, extra: int, seed: bytes
) -> None:
    xs = list(range(3, 3 + t + extra))
    shares = split(secret, t, xs, Drbg(seed).randbytes)
    for subset in itertools.islice(itertools.combinations(xs, t), 20):
        assert reconstruct({x: shares[x] for x in subset}, t) == secret
    assert reconstruct(shares, t) == secret  # all shares: the extras are checked too


def test_fewer_than_t_shares_are_refused() -> None:
    shares = split(SEED, 3, [1, 2, 3, 4], Drbg(SEED).randbytes)
    with pytest.raises(TooManyDropouts):
        reconstruct({1: shares[1], 2: shares[2]}, 3)


def test_t_minus_one_shares_are_consistent_with_any_secret() -> None:
    # Information-theoretic hiding, checked concretely: two different secrets can produce the
    # same t-1 = 1 share at x=1 (choose the second polynomial's slope to match).
    s1, s2 = int.from_bytes(b"\x01" * 32, "big"), int.from_bytes(b"\x02" * 32, "big")
    a = split_with_coefficients(s1.to_bytes(32, "big"), [5], [1])
    b = split_with_coefficients(s2.to_bytes(32, "big"), [(s1 + 5 - s2) % PRIME], [1])
    assert a == b


def test_an_inconsistent_extra_share_is_detected() -> None:
    shares = split(SEED, 2, [1, 2, 3], Drbg(SEED).randbytes)
    bad = dict(shares)
    bad[3] = (int.from_bytes(bad[3], "big") ^ 1).to_bytes(66, "big")
    with pytest.raises(ProtocolError, match="x=3"):
        reconstruct(bad, 2)
    with pytest.raises(ProtocolError):
        reconstruct({1: shares[1], 2: b"\xff" * 66}, 2)  # not a field element


# -- neighbour graph ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 40), degree=st.integers(1, 45), seed=st.binary(max_size=16))
def test_graph_is_k_regular_symmetric_and_loop_free(n: int, degree: int, seed: bytes) -> None:
    orgs = [f"o{i}" for i in range(n)]
    if degree < n - 1 and degree % 2 == 1 and n % 2 == 1:
        with pytest.raises(ConfigError):
            neighbour_graph(orgs, degree, seed)
        return
    graph = neighbour_graph(orgs, degree, seed)
    k = min(degree, n - 1)
    assert set(graph) == set(orgs)
    for u, nbrs in graph.items():
        assert len(nbrs) == k
        assert u not in nbrs
        assert all(u in graph[v] for v in nbrs)
    assert graph == neighbour_graph(list(reversed(orgs)), degree, seed)  # order-independent


def test_graph_is_all_to_all_for_small_consortia_and_depends_on_the_seed() -> None:
    orgs = [f"o{i}" for i in range(6)]
    assert neighbour_graph(orgs, None, b"") == {u: frozenset(orgs) - {u} for u in orgs}
    big = [f"o{i:02d}" for i in range(30)]
    assert ring_order(big, b"s1") != ring_order(big, b"s2")
    assert sorted(ring_order(big, b"s1")) == big


# -- configuration --------------------------------------------------------------------------


def _cfg(**over: object) -> RoundConfig:
    fields: dict[str, object] = {
        "round_id": "r", "participants": ("a", "b", "c", "d", "e"), "threshold": 3,
        "dim": 4, "clip": 1.0, "max_weight": 10,
    }  # fmt: skip
    fields.update(over)
    return RoundConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "over",
    [
        {"threshold": 2},  # 2t must exceed k+1 = 5
        {"threshold": 6},  # more than the holders
        {"participants": ("a", "b")},
        {"participants": ("a", "a", "b")},
        {"dim": 0},
        {"clip": float("nan")},
        {"clip": -1.0},
        {"max_weight": 0},
        {"max_weight": 2**31},  # five such weights overflow 32 bits
        {"degree": 3},  # odd degree, odd number of organizations
        {"round_id": ""},
        {"graph_seed": bytes(65)},
    ],
)
def test_invalid_configurations_are_refused(over: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        _cfg(**over)


def test_config_sorts_participants_and_digest_covers_every_field() -> None:
    cfg = _cfg(participants=("e", "d", "c", "b", "a"))
    assert cfg.participants == ("a", "b", "c", "d", "e")
    assert cfg.x_of("a") == 1
    assert cfg.holders("a") == frozenset("abcde")
    digests = {
        _cfg().digest, _cfg(round_id="r2").digest, _cfg(dim=5).digest, _cfg(clip=2.0).digest,
        _cfg(max_weight=11).digest, _cfg(threshold=4).digest, _cfg(stochastic=False).digest,
        _cfg(degree=2).digest, _cfg(graph_seed=b"x").digest,
        _cfg(participants=("a", "b", "c", "d", "f")).digest,
    }  # fmt: skip
    assert len(digests) == 10
