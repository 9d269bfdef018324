"""The data plane's share of a round: N organizations fetch one payload and upload one each.

This is the floor under fedchain's round overhead on a given machine: the same bytes a round
moves (the model down to every organization, one update of the same size back up from each),
concurrently, over the same mTLS gRPC data plane — with no ledger, no Flower encoding, no
hashing beyond the transport's own check. The aggregator's :class:`DataPlaneServer` and each
organization's :class:`DataPlaneClient` run in processes of their own, as in a real round.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from fedchain.hashing import sha256_hex
from fedchain.pki import identity_dir, init_consortium, load_consortium, load_identity
from fedchain.transport import DataPlaneClient, DataPlaneServer

_CTX = mp.get_context("spawn")


def _serve(pki: Path, orgs: list[str], size: int, rounds: int, conn: Connection) -> None:
    consortium = load_consortium(pki)
    identity = load_identity(identity_dir(pki, orgs[0], "aggregator"))
    server = DataPlaneServer(identity, consortium, max_payload_bytes=size)
    payload = os.urandom(size)
    digest = sha256_hex(payload)
    server.offer(digest, payload, orgs, verify=False)
    conn.send((server.start("127.0.0.1:0"), digest))
    for _ in range(rounds):
        uploads = [server.expect(org, digest) for org in orgs]
        conn.send("ready")
        for future in uploads:
            future.result(timeout=600)
        conn.send("done")
    conn.recv()
    server.stop(0)


def _organization(
    pki: Path, org: str, address: str, digest: str, size: int, rounds: int, conn: Connection
) -> None:
    consortium = load_consortium(pki)
    identity = load_identity(identity_dir(pki, org, "client1"))
    with DataPlaneClient(address, identity, consortium) as client:
        client.ping()
        conn.send("connected")
        for _ in range(rounds):
            conn.recv()
            client.upload(client.fetch(digest, max_size=size), digest, task="floor")


def transfer_floor(size: int, orgs: int, rounds: int) -> dict[str, float]:
    """Median / min wall time (s) of one round's transfers, first round excluded."""
    names = [f"org{i}" for i in range(1, orgs + 1)]
    with tempfile.TemporaryDirectory(prefix="fedchain-floor-") as tmp:
        pki = Path(tmp) / "pki"
        init_consortium(pki, consortium="floor", orgs=names, aggregator=names[0])
        ours, theirs = _CTX.Pipe()
        procs = [_CTX.Process(target=_serve, args=(pki, names, size, rounds, theirs))]
        procs[0].start()
        try:
            port, digest = ours.recv()
            pipes = []
            for org in names:
                mine, child = _CTX.Pipe()
                proc = _CTX.Process(
                    target=_organization,
                    args=(pki, org, f"127.0.0.1:{port}", digest, size, rounds, child),
                )
                proc.start()
                procs.append(proc)
                pipes.append(mine)
            for pipe in pipes:
                pipe.recv()
            times = []
            for _ in range(rounds):
                ours.recv()  # the server expects the uploads
                start = time.perf_counter()
                for pipe in pipes:
                    pipe.send("go")
                if ours.recv() != "done":
                    raise RuntimeError("the data-plane server is out of step")
                times.append(time.perf_counter() - start)
            ours.send("stop")
        finally:
            for proc in procs:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
    measured = times[1:] or times
    return {"median": statistics.median(measured), "min": min(measured), "n": len(measured)}
