"""Data-plane throughput over loopback mTLS: fetch and upload of one large payload.

Run by hand (not part of the test suite)::

    python benchmarks/dataplane_bench.py --size-mb 100 --repeat 3
    python benchmarks/dataplane_bench.py --size-mb 40 --repeat 10 --orgs 8

The aggregator's :class:`DataPlaneServer` runs in a child process (so client and server do not
share a GIL), the client in this one. A fresh consortium is created in a temporary folder with
``fedchain.pki``. The server offers the payload and drops its own reference, as the runtime's
grid does, so the data plane holds the only copy. Reported: MB/s per transfer (MB = 10^6
bytes; target >= 200 MB/s), the server's CPU time per MB fetched, the client's peak RSS growth
compared to the payload size (one received copy is expected) and the server's.

``--orgs N`` (N > 1) adds a fan-out phase, run first: N organizations, each in its own process,
fetch the same payload at the same moment, ``--repeat`` times, a freshly offered payload each
time (one round's model); reported are the aggregate MB/s (N x size over the wall time of the
slowest), the server's CPU time per MB served, and how many chunk copies the server made of
each payload (read from its internals; "not counted" for code without shared chunks, which
makes one per organization per chunk).
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
from typing import Any

from fedchain.hashing import sha256_hex
from fedchain.pki import identity_dir, init_consortium, load_consortium, load_identity
from fedchain.transport import CHUNK_SIZE, DataPlaneClient, DataPlaneServer

CLIENT_ORG = "org2"


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _rss_mb() -> float:
    """Current resident set size of this process, in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _cpu_s() -> float:
    """User + system CPU seconds of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _serve(pki: Path, orgs: list[str], size: int, chunk: int, conn: Connection) -> None:
    """Child process: offer ``size`` random bytes to ``orgs``, then obey the parent's commands.

    ``expect`` -> accept one upload of the payload from CLIENT_ORG and answer its size;
    ``offer`` -> withdraw the last fresh payload, offer a new one (a round's model) and answer
    its digest; ``copies`` -> chunk copies made of it so far; ``stats`` -> (CPU seconds, peak
    RSS growth MB); ``done`` -> stop.
    """
    consortium = load_consortium(pki)
    identity = load_identity(identity_dir(pki, consortium.aggregator, "aggregator"))
    server = DataPlaneServer(identity, consortium, max_payload_bytes=size, chunk_size=chunk)
    rss0 = _rss_mb()
    payload = os.urandom(size)
    digest = sha256_hex(payload)
    server.offer(digest, payload, orgs, verify=False)
    del payload  # like the grid: the data plane keeps the only copy
    port = server.start("127.0.0.1:0")
    conn.send((port, digest))
    fresh = ""
    while (command := conn.recv()) != "done":
        if command == "offer":
            if fresh:
                server.withdraw(fresh)
            payload = os.urandom(size)
            fresh = sha256_hex(payload)
            server.offer(fresh, payload, orgs, verify=False)
            del payload
            conn.send(fresh)
        elif command == "stats":
            conn.send((_cpu_s(), _peak_rss_mb() - rss0))
        elif command == "copies":  # a probe of the internals; None where not counted
            conn.send(getattr(server._registry.open_offer(orgs[0], fresh), "copies", None))
        elif command == "expect":
            future = server.expect(CLIENT_ORG, digest)
            conn.send("expecting")
            conn.send(len(future.result(timeout=600)))
    server.stop(0)


def _fan_client(
    pki: Path, org: str, address: str, size: int, chunk: int, go: Any, inbox: Any, outbox: Any
) -> None:
    """Child process: one organization; each ticket from ``inbox`` is one fetch, started at
    the release of the barrier ``go``; ``None`` ends it."""
    identity = load_identity(identity_dir(pki, org, "client1"))
    with DataPlaneClient(address, identity, load_consortium(pki), chunk_size=chunk) as client:
        client.ping()  # connect and handshake outside the timings
        while (ticket := inbox.get()) is not None:
            rep, digest = ticket
            go.wait(600)
            data = client.fetch(digest, max_size=size)  # raises unless the hash matches
            outbox.put((rep, len(data)))
            del data


def _server_stats(conn: Connection) -> tuple[float, float]:
    """The server's (CPU seconds, peak RSS growth MB) so far."""
    conn.send("stats")
    cpu, growth = conn.recv()
    return float(cpu), float(growth)


def _single(
    args: argparse.Namespace, pki: Path, port: int, digest: str, conn: Connection
) -> dict[str, Any]:
    """One organization: fetch then upload, ``repeat`` times; rates, CPU and RSS growth."""
    size, chunk = int(args.size_mb * 1e6), args.chunk_kib * 1024
    consortium = load_consortium(pki)
    identity = load_identity(identity_dir(pki, CLIENT_ORG, "client1"))
    rss0 = _peak_rss_mb()
    found: dict[str, Any] = {"fetch": [], "upload": [], "cpu": [], "growth": [0.0, 0.0]}
    with DataPlaneClient(f"127.0.0.1:{port}", identity, consortium, chunk_size=chunk) as client:
        client.ping()  # connect and handshake outside the timings
        for _ in range(args.repeat):
            cpu0 = _server_stats(conn)[0]
            start = time.perf_counter()
            data = client.fetch(digest, max_size=size)
            found["fetch"].append(size / 1e6 / (time.perf_counter() - start))
            found["cpu"].append((_server_stats(conn)[0] - cpu0) * 1e3 / (size / 1e6))
            found["growth"][0] = found["growth"][0] or _peak_rss_mb() - rss0
            conn.send("expect")
            if conn.recv() != "expecting":
                raise RuntimeError("server out of step")
            start = time.perf_counter()
            client.upload(data, digest, task="bench")
            found["upload"].append(size / 1e6 / (time.perf_counter() - start))
            if conn.recv() != size:
                raise RuntimeError("server received the wrong size")
            del data
    found["growth"][1] = _peak_rss_mb() - rss0
    return found


def _fan_out(
    args: argparse.Namespace, pki: Path, orgs: list[str], port: int, conn: Connection
) -> dict[str, Any]:
    """``len(orgs)`` processes fetch a fresh payload at once, ``repeat`` times (one round's
    model each time): aggregate MB/s, server CPU per MB served."""
    size, chunk = int(args.size_mb * 1e6), args.chunk_kib * 1024
    ctx = mp.get_context("spawn")
    go, outbox = ctx.Barrier(len(orgs) + 1), ctx.Queue()
    inboxes = [ctx.Queue() for _ in orgs]
    procs = [
        ctx.Process(
            target=_fan_client,
            args=(pki, org, f"127.0.0.1:{port}", size, chunk, go, inbox, outbox),
            daemon=True,
        )
        for org, inbox in zip(orgs, inboxes, strict=True)
    ]
    found: dict[str, Any] = {"rate": [], "cpu": [], "copies": []}
    for proc in procs:
        proc.start()
    try:
        for rep in range(args.repeat):
            conn.send("offer")
            digest = conn.recv()
            for inbox in inboxes:
                inbox.put((rep, digest))
            cpu0 = _server_stats(conn)[0]
            go.wait(600)  # every client holds its ticket: the release is the start
            start = time.perf_counter()
            for _ in orgs:
                if outbox.get(timeout=600) != (rep, size):
                    raise RuntimeError("a client received the wrong payload")
            wall = time.perf_counter() - start
            found["rate"].append(len(orgs) * size / 1e6 / wall)
            found["cpu"].append((_server_stats(conn)[0] - cpu0) * 1e3 / (len(orgs) * size / 1e6))
            conn.send("copies")
            found["copies"].append(conn.recv())
    finally:
        for inbox in inboxes:
            inbox.put(None)
        for proc in procs:
            proc.join(60)
    return found


def _run(args: argparse.Namespace) -> int:
    size = int(args.size_mb * 1e6)
    orgs = [f"org{i + 2}" for i in range(args.orgs)]
    with tempfile.TemporaryDirectory() as tmp:
        pki = Path(tmp) / "pki"
        init_consortium(pki, consortium="bench", orgs=("org1", *orgs), aggregator="org1")
        ours, theirs = mp.get_context("spawn").Pipe()
        child = mp.get_context("spawn").Process(
            target=_serve, args=(pki, orgs, size, args.chunk_kib * 1024, theirs)
        )
        child.start()
        port, digest = ours.recv()
        growth: list[tuple[str, float]] = []
        fan: dict[str, Any] | None = None
        if args.orgs > 1:  # first, so the server's peak RSS then is the fan-out's alone
            fan = _fan_out(args, pki, orgs, port, ours)
            growth.append(("after the fan-out", _server_stats(ours)[1]))
        single = _single(args, pki, port, digest, ours)
        growth.append(("over the whole run", _server_stats(ours)[1]))
        ours.send("done")
        child.join(30)
    _report(args, single, fan, growth)
    return 0


def _line(name: str, values: list[float], unit: str, digits: int = 1) -> str:
    return (
        f"{name:7s} median {statistics.median(values):7.{digits}f} {unit}  "
        f"min {min(values):7.{digits}f}  max {max(values):7.{digits}f}"
    )


def _report(
    args: argparse.Namespace,
    single: dict[str, Any],
    fan: dict[str, Any] | None,
    server: list[tuple[str, float]],
) -> None:
    print(f"payload {args.size_mb:g} MB, chunk {args.chunk_kib} KiB, {args.repeat} runs, mTLS")
    print(_line("fetch", single["fetch"], "MB/s"))
    print(_line("upload", single["upload"], "MB/s"))
    print(_line("server CPU per fetched MB", single["cpu"], "ms", 2))
    for when, mb in zip(("first fetch", "all runs"), single["growth"], strict=True):
        print(
            f"client peak RSS growth after {when}: {mb:.1f} MB "
            f"({mb / args.size_mb:.2f}x the payload; the received copy itself is 1.00x)"
        )
    if fan is not None:
        print(f"fan-out: {args.orgs} orgs fetch at once, each in its own process")
        print(_line("fan-out aggregate", fan["rate"], "MB/s"))
        print(_line("fan-out server CPU per MB served", fan["cpu"], "ms", 2))
        chunks = -(-int(args.size_mb * 1e6) // (args.chunk_kib * 1024))
        copies = fan["copies"]
        made = "not counted" if None in copies else f"median {statistics.median(copies):g}"
        print(
            f"fan-out chunk copies per payload: {made} "
            f"({chunks} chunks; one copy per org per chunk would be {args.orgs * chunks})"
        )
    for when, mb in server:
        print(
            f"server peak RSS growth {when}: {mb:.1f} MB "
            f"({mb / args.size_mb:.2f}x the payload; the offered copy itself is 1.00x)"
        )


def main(argv: list[str] | None = None) -> int:
    """Parse options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-kib", type=int, default=CHUNK_SIZE // 1024)
    parser.add_argument("--orgs", type=int, default=1, help="organizations in the fan-out phase")
    return _run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
