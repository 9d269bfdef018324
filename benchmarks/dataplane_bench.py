"""Data-plane throughput over loopback mTLS: fetch and upload of one large payload.

Run by hand (not part of the test suite)::

    python benchmarks/dataplane_bench.py --size-mb 100 --repeat 3

The aggregator's :class:`DataPlaneServer` runs in a child process (so client and server do not
share a GIL), the client in this one. A fresh consortium is created in a temporary folder with
``fedchain.pki``. Reported: MB/s per transfer (MB = 10^6 bytes; target >= 200 MB/s), and the
client's peak RSS growth compared to the payload size (one received copy is expected).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from fedchain.pki import identity_dir, init_consortium, load_consortium, load_identity
from fedchain.transport import CHUNK_SIZE, DataPlaneClient, DataPlaneServer, sha256_hex

CLIENT_ORG = "org2"


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _serve(pki: Path, size: int, chunk: int, repeat: int, conn: Connection) -> None:
    """Child process: offer ``size`` random bytes, then accept ``repeat`` uploads of them."""
    consortium = load_consortium(pki)
    identity = load_identity(identity_dir(pki, consortium.aggregator, "aggregator"))
    server = DataPlaneServer(identity, consortium, max_payload_bytes=size, chunk_size=chunk)
    payload = os.urandom(size)
    digest = sha256_hex(payload)
    server.offer(digest, payload, [CLIENT_ORG], verify=False)
    port = server.start("127.0.0.1:0")
    conn.send((port, digest))
    for _ in range(repeat):
        future = server.expect(CLIENT_ORG, digest)
        conn.send("expecting")
        conn.send(len(future.result(timeout=600)))
    conn.recv()  # wait for the client to finish
    server.stop(0)


def _run(args: argparse.Namespace) -> int:
    size = int(args.size_mb * 1e6)
    chunk = args.chunk_kib * 1024
    with tempfile.TemporaryDirectory() as tmp:
        pki = Path(tmp) / "pki"
        init_consortium(pki, consortium="bench", orgs=("org1", CLIENT_ORG), aggregator="org1")
        consortium = load_consortium(pki)
        identity = load_identity(identity_dir(pki, CLIENT_ORG, "client1"))
        ours, theirs = mp.get_context("spawn").Pipe()
        child = mp.get_context("spawn").Process(
            target=_serve, args=(pki, size, chunk, args.repeat, theirs)
        )
        child.start()
        port, digest = ours.recv()
        rss0 = _peak_rss_mb()
        fetch_rates: list[float] = []
        upload_rates: list[float] = []
        first_fetch_growth = 0.0
        with DataPlaneClient(f"127.0.0.1:{port}", identity, consortium, chunk_size=chunk) as client:
            client.ping()  # connect and handshake outside the timings
            for _ in range(args.repeat):
                start = time.perf_counter()
                data = client.fetch(digest, max_size=size)
                fetch_rates.append(size / 1e6 / (time.perf_counter() - start))
                first_fetch_growth = first_fetch_growth or _peak_rss_mb() - rss0
                if ours.recv() != "expecting":
                    raise RuntimeError("server out of step")
                start = time.perf_counter()
                client.upload(data, digest, task="bench")
                upload_rates.append(size / 1e6 / (time.perf_counter() - start))
                if ours.recv() != size:
                    raise RuntimeError("server received the wrong size")
                del data
        ours.send("done")
        child.join(30)
        growth = (first_fetch_growth, _peak_rss_mb() - rss0)
    _report(args, fetch_rates, upload_rates, growth)
    return 0


def _report(
    args: argparse.Namespace,
    fetch: list[float],
    upload: list[float],
    growth: tuple[float, float],
) -> None:
    print(f"payload {args.size_mb:g} MB, chunk {args.chunk_kib} KiB, {args.repeat} runs, mTLS")
    for name, rates in (("fetch", fetch), ("upload", upload)):
        print(
            f"{name:7s} median {statistics.median(rates):7.1f} MB/s  "
            f"min {min(rates):7.1f}  max {max(rates):7.1f}"
        )
    for when, mb in zip(("first fetch", "all runs"), growth, strict=True):
        print(
            f"client peak RSS growth after {when}: {mb:.1f} MB "
            f"({mb / args.size_mb:.2f}x the payload; the received copy itself is 1.00x)"
        )


def main(argv: list[str] | None = None) -> int:
    """Parse options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-kib", type=int, default=CHUNK_SIZE // 1024)
    return _run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
