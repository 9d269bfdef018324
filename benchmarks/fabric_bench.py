"""Fabric-ledger benchmark (run by hand against a real network, not in CI).

    python benchmarks/fabric_bench.py --pki PKI --endpoint HOST:PORT --tls-ca CA.pem [--json]
    python benchmarks/fabric_bench.py --stand-in      # the CI stand-in: a smoke run, not Fabric

``PKI`` is the ``fedchain pki init`` folder whose organizations are the channel's MSPs (the
aggregator signs with ``users/aggregator``, the others with ``users/client1``). Measures:

* lone publish latency: one ``run`` record per transaction, one after another (about
  BatchTimeout + endorsement on a real network);
* records per second: batches of ``--batch`` records, ``--writers`` transactions in flight;
* round-phase latency: the aggregator opens a task for every other organization, each answers
  concurrently with its update, until the aggregator has seen every update (``wait``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for --stand-in (tests/)

from fedchain.ledger import Record, parse_record
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.fabric import (
    FabricLedger,
    connect,
    ensure_consortium,
    from_pki_identity,
)
from fedchain.pki import AGGREGATOR_NAME, Consortium, load_consortium, load_identity

H = "ab" * 32
Opener = Callable[[str], FabricLedger]


def run_record(org: str, name: str) -> Record:
    return parse_record({
        "v": 1, "kind": "run", "org": org, "run": name, "app_sha256": H,
        "strategy_sha256": H, "model_sha256": H, "config": {"rounds": 1},
    })  # fmt: skip


def task_record(org: str, run: str, rnd: int, recipients: list[str]) -> Record:
    return parse_record({
        "v": 1, "kind": "task", "org": org, "run": run, "round": rnd, "task": f"{run}-t{rnd}",
        "type": "train", "model_sha256": H, "deadline": 0,
        "recipients": [{"org": o, "payload_sha256": H, "payload_size": 1} for o in recipients],
    })  # fmt: skip


def update_record(org: str, run: str, rnd: int) -> Record:
    return parse_record({
        "v": 1, "kind": "update", "org": org, "run": run, "round": rnd, "task": f"{run}-t{rnd}",
        "status": "ok", "update_sha256": H, "update_size": 1, "num_examples": 1,
        "metrics": {}, "error": None,
    })  # fmt: skip


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {
        "median_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * p95, 1),
    }


def bench(open_ledger: Opener, consortium: Consortium, args: argparse.Namespace) -> dict[str, Any]:
    agg_org = consortium.aggregator
    others = [o for o in consortium.orgs if o != agg_org]
    agg = open_ledger(agg_org)
    ensure_consortium(agg, consortium_record(consortium))
    prefix = uuid.uuid4().hex[:8]
    lone = []
    for i in range(args.lone):
        start = time.perf_counter()
        agg.metadata_publish(run_record(agg_org, f"{prefix}-lone-{i}"))
        lone.append(time.perf_counter() - start)
    batches = [[run_record(agg_org, f"{prefix}-b{b}-{i}") for i in range(args.batch)]
               for b in range(args.batches)]  # fmt: skip
    start = time.perf_counter()
    with ThreadPoolExecutor(args.writers) as pool:
        list(pool.map(agg.metadata_publish, batches))
    throughput = args.batch * args.batches / (time.perf_counter() - start)
    handles = {org: open_ledger(org) for org in others}
    run = f"{prefix}-round"
    agg.metadata_publish(run_record(agg_org, run))
    phases = []
    for rnd in range(1, args.rounds + 1):
        phases.append(_phase(agg, handles, run, rnd))
    return {
        "lone_publish": _ms(lone),
        "records_per_s": round(throughput, 1),
        "batch": args.batch,
        "writers": args.writers,
        "round_phase": {**_ms(phases), "orgs": len(others)},
    }


def _phase(agg: FabricLedger, handles: dict[str, FabricLedger], run: str, rnd: int) -> float:
    start = time.perf_counter()
    (task,) = agg.metadata_publish(task_record(agg.org, run, rnd, sorted(handles)))
    with ThreadPoolExecutor(len(handles)) as pool:
        list(pool.map(lambda h: h.metadata_publish(update_record(h.org, run, rnd)),
                      handles.values()))  # fmt: skip
    seen: set[str] = set()
    cursor, deadline = task.seq, time.monotonic() + 60
    while len(seen) < len(handles) and time.monotonic() < deadline:
        for entry in agg.wait(cursor, deadline - time.monotonic()):
            cursor = entry.seq
            if entry.record.kind == "update":
                seen.add(entry.record.org)
    return time.perf_counter() - start


@contextlib.contextmanager
def _network(args: argparse.Namespace) -> Iterator[tuple[Opener, Consortium]]:
    handles: list[FabricLedger] = []
    stack = contextlib.ExitStack()
    if args.stand_in:
        pki, consortium, endpoint, tls_ca = stack.enter_context(_stand_in())
    else:
        pki, endpoint = Path(args.pki), args.endpoint
        consortium, tls_ca = load_consortium(pki), Path(args.tls_ca).read_bytes()

    def open_ledger(org: str) -> FabricLedger:
        name = AGGREGATOR_NAME if org == consortium.aggregator else "client1"
        client, signer = from_pki_identity(load_identity(pki / org / "users" / name))
        gateway = connect(endpoint, client, signer, tls_ca=tls_ca)
        handles.append(FabricLedger(gateway, channel=args.channel, chaincode=args.chaincode,
                                    owns_gateway=True))  # fmt: skip
        return handles[-1]

    with stack:
        try:
            yield open_ledger, consortium
        finally:
            for handle in handles:
                handle.close()


@contextlib.contextmanager
def _stand_in() -> Iterator[tuple[Path, Consortium, str, bytes]]:
    import tempfile

    from tests.fabric_support.chaincode import ChaincodeProcess
    from tests.fabric_support.network import StandInNetwork

    from fedchain.pki import init_consortium

    with tempfile.TemporaryDirectory() as tmp:
        pki = Path(tmp) / "pki"
        consortium = init_consortium(pki, consortium="bench", orgs=("org1", "org2", "org3"),
                                     aggregator="org1")  # fmt: skip
        chaincode = ChaincodeProcess()
        network = StandInNetwork(
            pki_dir=pki, consortium=consortium, chaincode_address=chaincode.address,
            batch_timeout=0.2,
        )  # fmt: skip
        try:
            yield pki, consortium, network.endpoint, network.tls_ca
        finally:
            network.close()
            chaincode.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stand-in", action="store_true", help="the CI stand-in (smoke run)")
    parser.add_argument("--pki", help="fedchain pki folder of the channel's organizations")
    parser.add_argument("--endpoint", help="a peer's gateway, host:port")
    parser.add_argument("--tls-ca", help="the peer's TLS CA (PEM)")
    parser.add_argument("--channel", default="fedchain")
    parser.add_argument("--chaincode", default="fedchain")
    parser.add_argument("--lone", type=int, default=10)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.stand_in and not (args.pki and args.endpoint and args.tls_ca):
        parser.error("give --pki, --endpoint and --tls-ca (or --stand-in)")
    with _network(args) as (open_ledger, consortium):
        result = bench(open_ledger, consortium, args)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
