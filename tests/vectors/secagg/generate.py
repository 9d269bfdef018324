"""Generate the secure-aggregation known-answer vectors (``tests/vectors/secagg/*.json``).

Run ``python tests/vectors/secagg/generate.py`` after a deliberate change of the wire format;
never edit the JSON files by hand (a unit test regenerates them and compares). Every input comes
from SHA-256 of a fixed label, so the output is identical on every machine. Before writing, the
generator checks the properties each vector relies on (e.g. both sides derive the same pairwise
seed, any t shares reconstruct), so an inconsistent vector cannot be written.

Files: ``x25519_hkdf.json`` (key agreement, seed and share-key derivation, sealed shares),
``prg.json`` (mask expansion), ``shamir.json`` (fixed coefficients, shares, reconstruction),
``quantize.json`` (encoding and decoding), ``graph.json`` (neighbour graphs), ``round.json``
(a whole 4-organization round with one dropout: masked-vector digests and the result).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.secagg import (
    LocalUpdate,
    MaskedInput,
    RoundConfig,
    ServerMessage,
    ServerSession,
    Stage,
)
from fedchain.secagg.client import ClientSession
from fedchain.secagg.graph import neighbour_graph
from fedchain.secagg.keys import pairwise_seed, share_key, x25519_public, x25519_shared
from fedchain.secagg.prg import Drbg, expand_mask
from fedchain.secagg.quantize import Quantizer
from fedchain.secagg.shamir import random_coefficients, reconstruct, split_with_coefficients
from fedchain.secagg.sharebox import open_shares, seal_shares

HERE = Path(__file__).parent


def h(name: str, n: int = 32) -> bytes:
    """``n`` deterministic bytes for ``name``."""
    return Drbg(hashlib.sha256(f"secagg-vectors/{name}".encode()).digest()).randbytes(n)


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"refusing to write vectors: {what}")


def x25519_hkdf() -> dict[str, Any]:
    cases = []
    for i, (a, b) in enumerate([("org1", "org2"), ("hospital-b", "hospital-a"), ("é", "z")]):
        sk_a, sk_b, ctx = h(f"kx{i}/a"), h(f"kx{i}/b"), h(f"kx{i}/context")
        pk_a, pk_b = x25519_public(sk_a), x25519_public(sk_b)
        seed = pairwise_seed(sk_a, pk_b, ctx, a, b)
        check(seed == pairwise_seed(sk_b, pk_a, ctx, b, a), "pairwise seed is not symmetric")
        shares = (h(f"kx{i}/s1", 66), h(f"kx{i}/s2", 66))
        box = seal_shares(sk_a, pk_b, ctx, a, b, shares)
        check(open_shares(sk_b, pk_a, ctx, a, b, box) == shares, "sealed shares do not open")
        cases.append({
            "org_a": a, "org_b": b, "context": ctx.hex(),
            "private_a": sk_a.hex(), "private_b": sk_b.hex(),
            "public_a": pk_a.hex(), "public_b": pk_b.hex(),
            "shared_secret": x25519_shared(sk_a, pk_b).hex(),
            "pairwise_seed": seed.hex(),
            "share_key_a_to_b": share_key(sk_a, pk_b, ctx, a, b).hex(),
            "share_key_b_to_a": share_key(sk_b, pk_a, ctx, b, a).hex(),
            "seed_share": shares[0].hex(), "key_share": shares[1].hex(),
            "sealed_a_to_b": box.hex(),
        })  # fmt: skip
    return {"cases": cases}


def prg() -> dict[str, Any]:
    cases = []
    for i, length in enumerate([1, 5, 16, 100_003]):
        seed = h(f"prg{i}")
        mask = expand_mask(seed, length)
        cases.append({
            "seed": seed.hex(), "length": length,
            "first_words": [int(w) for w in mask[:16]],
            "sha256_le": hashlib.sha256(mask.astype("<u4").tobytes()).hexdigest(),
        })  # fmt: skip
    return {"cases": cases}


def shamir() -> dict[str, Any]:
    cases = []
    for i, (t, xs) in enumerate([(2, [1, 2, 3]), (3, [2, 5, 7, 9, 11]), (5, [1, 2, 3, 4, 5, 6])]):
        secret = h(f"shamir{i}/secret")
        coefficients = random_coefficients(t - 1, Drbg(h(f"shamir{i}/rng")).randbytes)
        shares = split_with_coefficients(secret, coefficients, xs)
        for subset in itertools.combinations(xs, t):
            got = reconstruct({x: shares[x] for x in subset}, t)
            check(got == secret, f"case {i}: subset {subset} does not reconstruct")
        cases.append({
            "secret": secret.hex(), "threshold": t,
            "coefficients": [format(c, "x") for c in coefficients],
            "shares": {str(x): s.hex() for x, s in shares.items()},
        })  # fmt: skip
    return {"prime": "2^521 - 1", "cases": cases}


def quantize() -> dict[str, Any]:
    cases = []
    params = [(3, 1.0, 10, True), (5, 8.0, 1000, False), (20, 0.5, 7, True), (4, 2.0, 1, False)]
    for i, (n, clip, max_weight, stochastic) in enumerate(params):
        q = Quantizer(n, clip, max_weight, stochastic=stochastic)
        rng = np.random.default_rng(int.from_bytes(h(f"quant{i}", 8), "big"))
        x = np.concatenate([rng.uniform(-1.5 * clip, 1.5 * clip, 6), [clip, -clip, 0.0]])
        x = x.astype(np.float32)
        weight = max_weight if i % 2 else max(1, max_weight // 3)
        noise = rng.random(x.size) if stochastic else None
        ring = q.quantize_with_noise(x, weight, noise)
        values, total = q.dequantize(ring)
        ref = weight * np.clip(x.astype(np.float64), -clip, clip)
        check(total == weight and bool(np.all(np.abs(values - ref) <= q.error_bound())), "bound")
        cases.append({
            "n": n, "clip": clip, "max_weight": max_weight, "stochastic": stochastic,
            "weight": weight, "x": [float(v) for v in x],
            "noise": None if noise is None else [float(v) for v in noise],
            "ring": [int(w) for w in ring], "decoded": [float(v) for v in values],
            "error_bound": q.error_bound(),
        })  # fmt: skip
    return {"cases": cases}


def graph() -> dict[str, Any]:
    cases = []
    for n, degree in [(5, None), (7, 2), (8, 3), (10, 4), (12, 6)]:
        orgs = [f"org{i:02d}" for i in range(n)]
        seed = h(f"graph{n}/{degree}")
        nbrs = neighbour_graph(orgs, degree, seed)
        check(all(u in nbrs[v] for u in orgs for v in nbrs[u]), "graph not symmetric")
        cases.append({
            "participants": orgs, "degree": degree, "seed": seed.hex(),
            "neighbours": {u: sorted(v) for u, v in sorted(nbrs.items())},
        })  # fmt: skip
    return {"cases": cases}


def round_config() -> RoundConfig:
    return RoundConfig(
        round_id="vector-round", participants=("a", "b", "c", "d"), threshold=3, dim=6,
        clip=2.0, max_weight=50, degree=None, stochastic=False, graph_seed=h("round/graph"),
    )  # fmt: skip


def full_round() -> dict[str, Any]:
    cfg = round_config()
    updates = {
        org: LocalUpdate(np.frombuffer(h(f"round/{org}/x", 4 * cfg.dim), dtype="<i4")
                         .astype(np.float64) / 2**31 * 2.5, 10 + 7 * i)
        for i, org in enumerate(cfg.participants)
    }  # fmt: skip
    server = ServerSession(cfg)
    clients = {o: ClientSession(o, entropy=h(f"round/{o}/entropy")) for o in cfg.participants}
    outbox: dict[str, ServerMessage] = dict(server.start())
    masked: dict[str, str] = {}
    for stage in (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.COLLECT_MASKED, Stage.UNMASK):
        for org, msg in sorted(outbox.items()):
            if org == "c" and stage is Stage.COLLECT_MASKED:
                continue  # c drops after sharing its keys: its pairwise masks are recovered
            reply = clients[org].handle(msg, updates[org])
            check(reply is not None, f"{org} did not reply in {stage.value}")
            if isinstance(reply, MaskedInput):
                masked[org] = hashlib.sha256(reply.to_bytes()).hexdigest()
            if reply is not None:
                server.receive(org, reply)
        if stage is not Stage.UNMASK:
            outbox = dict(server.advance())
    result = server.finish()
    return {
        "config": {"round_id": cfg.round_id, "participants": list(cfg.participants),
                   "threshold": cfg.threshold, "dim": cfg.dim, "clip": cfg.clip,
                   "max_weight": cfg.max_weight, "degree": cfg.degree,
                   "stochastic": cfg.stochastic, "graph_seed": cfg.graph_seed.hex()},
        "config_digest": cfg.digest.hex(),
        "entropy": {o: h(f"round/{o}/entropy").hex() for o in cfg.participants},
        "updates": {o: {"x": [float(v) for v in np.asarray(u.vector)], "weight": u.weight}
                    for o, u in updates.items()},
        "drop_before_masked": ["c"],
        "masked_sha256": masked,
        "weighted_sum": [float(v) for v in result.weighted_sum],
        "total_weight": result.total_weight,
    }  # fmt: skip


FILES = {
    "x25519_hkdf.json": x25519_hkdf,
    "prg.json": prg,
    "shamir.json": shamir,
    "quantize.json": quantize,
    "graph.json": graph,
    "round.json": full_round,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as written to disk."""
    return {
        name: json.dumps(make(), indent=1, sort_keys=True) + "\n" for name, make in FILES.items()
    }


def main(out: Path = HERE) -> None:
    for name, text in render().items():
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name} ({len(text)} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
