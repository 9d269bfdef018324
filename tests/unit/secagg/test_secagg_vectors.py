"""Known-answer tests against tests/vectors/secagg/*.json (written by its generate.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedchain.secagg import ClientSession, LocalUpdate, MaskedInput, RoundConfig, ServerSession
from fedchain.secagg.graph import neighbour_graph
from fedchain.secagg.keys import pairwise_seed, share_key, x25519_public, x25519_shared
from fedchain.secagg.prg import expand_mask
from fedchain.secagg.quantize import Quantizer
from fedchain.secagg.shamir import PRIME, reconstruct, split_with_coefficients
from fedchain.secagg.sharebox import open_shares, seal_shares

VECTORS = Path(__file__).parents[2] / "vectors" / "secagg"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def cases(name: str) -> list[dict[str, Any]]:
    return list(load(name)["cases"])


def test_vector_files_are_exactly_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "secagg_vector_generator", VECTORS / "generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render()
    assert set(rendered) == {p.name for p in VECTORS.glob("*.json")}
    for name, text in rendered.items():
        assert (VECTORS / name).read_text(encoding="utf-8") == text, f"{name} was edited by hand"
    assert sum(len(t) for t in rendered.values()) < 100_000


@pytest.mark.parametrize("v", cases("x25519_hkdf.json"), ids=lambda v: v["org_a"])
def test_key_agreement_and_derivations(v: dict[str, Any]) -> None:
    sk_a, sk_b = bytes.fromhex(v["private_a"]), bytes.fromhex(v["private_b"])
    pk_a, pk_b = bytes.fromhex(v["public_a"]), bytes.fromhex(v["public_b"])
    ctx, a, b = bytes.fromhex(v["context"]), v["org_a"], v["org_b"]
    assert x25519_public(sk_a) == pk_a
    assert x25519_public(sk_b) == pk_b
    assert x25519_shared(sk_a, pk_b).hex() == v["shared_secret"] == x25519_shared(sk_b, pk_a).hex()
    assert pairwise_seed(sk_a, pk_b, ctx, a, b).hex() == v["pairwise_seed"]
    assert pairwise_seed(sk_b, pk_a, ctx, b, a).hex() == v["pairwise_seed"]
    assert share_key(sk_a, pk_b, ctx, a, b).hex() == v["share_key_a_to_b"]
    assert share_key(sk_b, pk_a, ctx, b, a).hex() == v["share_key_b_to_a"]
    shares = (bytes.fromhex(v["seed_share"]), bytes.fromhex(v["key_share"]))
    assert seal_shares(sk_a, pk_b, ctx, a, b, shares).hex() == v["sealed_a_to_b"]
    assert open_shares(sk_b, pk_a, ctx, a, b, bytes.fromhex(v["sealed_a_to_b"])) == shares


@pytest.mark.parametrize("v", cases("prg.json"), ids=lambda v: str(v["length"]))
def test_mask_expansion(v: dict[str, Any]) -> None:
    mask = expand_mask(bytes.fromhex(v["seed"]), v["length"])
    assert mask.dtype == np.uint32
    assert [int(w) for w in mask[:16]] == v["first_words"]
    assert hashlib.sha256(mask.astype("<u4").tobytes()).hexdigest() == v["sha256_le"]


@pytest.mark.parametrize("v", cases("shamir.json"), ids=lambda v: str(v["threshold"]))
def test_shamir_share_and_reconstruct(v: dict[str, Any]) -> None:
    assert load("shamir.json")["prime"] == "2^521 - 1"
    assert PRIME == 2**521 - 1
    secret, t = bytes.fromhex(v["secret"]), v["threshold"]
    shares = {int(x): bytes.fromhex(s) for x, s in v["shares"].items()}
    coefficients = [int(c, 16) for c in v["coefficients"]]
    assert split_with_coefficients(secret, coefficients, list(shares)) == shares
    for subset in itertools.combinations(shares, t):
        assert reconstruct({x: shares[x] for x in subset}, t) == secret


@pytest.mark.parametrize("v", cases("quantize.json"), ids=lambda v: f"n{v['n']}")
def test_quantization(v: dict[str, Any]) -> None:
    q = Quantizer(v["n"], v["clip"], v["max_weight"], stochastic=v["stochastic"])
    x = np.array(v["x"], dtype=np.float32)
    noise = None if v["noise"] is None else np.array(v["noise"])
    ring = q.quantize_with_noise(x, v["weight"], noise)
    assert [int(w) for w in ring] == v["ring"]
    values, weight = q.dequantize(ring)
    assert weight == v["weight"]
    assert [float(f) for f in values] == v["decoded"]
    assert q.error_bound() == v["error_bound"]


@pytest.mark.parametrize("v", cases("graph.json"), ids=lambda v: f"{len(v['participants'])}")
def test_neighbour_graph(v: dict[str, Any]) -> None:
    graph = neighbour_graph(v["participants"], v["degree"], bytes.fromhex(v["seed"]))
    assert {u: sorted(n) for u, n in graph.items()} == v["neighbours"]


def test_whole_round() -> None:
    v = load("round.json")
    c = v["config"]
    cfg = RoundConfig(
        round_id=c["round_id"], participants=tuple(c["participants"]), threshold=c["threshold"],
        dim=c["dim"], clip=c["clip"], max_weight=c["max_weight"], degree=c["degree"],
        stochastic=c["stochastic"], graph_seed=bytes.fromhex(c["graph_seed"]),
    )  # fmt: skip
    assert cfg.digest.hex() == v["config_digest"]
    updates = {o: LocalUpdate(np.array(u["x"]), u["weight"]) for o, u in v["updates"].items()}
    clients = {o: ClientSession(o, entropy=bytes.fromhex(e)) for o, e in v["entropy"].items()}
    server = ServerSession(cfg)
    outbox: dict[str, Any] = dict(server.start())
    masked: dict[str, str] = {}
    for step in range(4):
        for org, msg in sorted(outbox.items()):
            if step == 2 and org in v["drop_before_masked"]:
                continue
            reply = clients[org].handle(msg, updates[org])
            if isinstance(reply, MaskedInput):
                masked[org] = hashlib.sha256(reply.to_bytes()).hexdigest()
            assert reply is not None
            server.receive(org, reply)
        if step < 3:
            outbox = dict(server.advance())
    result = server.finish()
    assert masked == v["masked_sha256"]
    assert [float(f) for f in result.weighted_sum] == v["weighted_sum"]
    assert result.total_weight == v["total_weight"]
