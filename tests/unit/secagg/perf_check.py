"""Quick by-hand timing of the secagg core (not a test): ``python tests/unit/secagg/perf_check.py``.

Times, for a 10M-parameter float32 update and 20 organizations all-to-all (19 neighbours):
the masking step alone (self mask + 19 pairwise masks into a uint32 vector), a client's whole
masked-input step (decrypt shares, quantize, mask), and the server's ``finish`` (reconstruct
and remove masks) with 2 organizations dropped before sending their masked vectors.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from secagg_harness import Round, make_config, plain_weighted_sum

from fedchain.secagg import LocalUpdate, Stage
from fedchain.secagg.prg import apply_masks

DIM, N = 10_000_000, 20


def time_masking() -> float:
    acc = np.zeros(DIM + 1, dtype=np.uint32)
    seeds = [(hashlib.sha256(bytes([i])).digest(), 1 if i % 2 else -1) for i in range(20)]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        apply_masks(acc, seeds)
        best = min(best, time.perf_counter() - t0)
    return best


def time_round(drop_before_masked: list[str]) -> None:
    cfg = make_config(N, dim=DIM, clip=4.0, max_weight=10_000)
    rng = np.random.default_rng(1)
    vec = rng.uniform(-4, 4, DIM).astype(np.float32)
    ups = {o: LocalUpdate(np.roll(vec, i), 100 * (i + 1)) for i, o in enumerate(cfg.participants)}
    rnd = Round(cfg, ups)
    rnd.start()
    rnd.step()
    rnd.step()
    client_times = []
    for org, msg in sorted(rnd.outbox.items()):
        if org in drop_before_masked:
            continue
        t0 = time.perf_counter()
        reply = rnd.clients[org].handle(msg, ups[org])
        client_times.append(time.perf_counter() - t0)
        if reply is not None:
            rnd.server.receive(org, reply)
    rnd.outbox = rnd.server.advance()
    for org, reply in rnd.replies().items():
        rnd.server.receive(org, reply)
    t0 = time.perf_counter()
    res = rnd.server.finish()
    unmask = time.perf_counter() - t0
    ref, w = plain_weighted_sum(cfg, ups, res.contributors)
    err = float(np.abs(res.weighted_sum - ref).max())
    if res.total_weight != w or err > res.error_bound:
        raise SystemExit(f"wrong aggregate: error {err}, weight {res.total_weight} != {w}")
    print(f"client masked-input step (quantize+mask), median: {np.median(client_times):.3f} s")
    print(f"server finish with {len(drop_before_masked)} dropped before masking: {unmask:.3f} s")
    print(
        f"max abs error {err:.3g} (bound {res.error_bound:.3g}); mean error "
        f"{err / w:.3g}; dropouts {res.dropouts[Stage.COLLECT_MASKED]}"
    )


if __name__ == "__main__":
    print(f"apply_masks, {DIM:,} words x 20 masks (self + 19 pairwise): {time_masking():.3f} s")
    time_round(["org3", "org11"])
