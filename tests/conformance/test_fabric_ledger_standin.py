"""``FabricLedger`` where only the stand-in channel can set the scene: which transactions share
a block, MVCC conflicts, a late or withheld event stream, injected gateway faults, a gateway
that goes away, the blocks a stream starts from. It runs the REAL chaincode process
(``chaincode/``, as a service) behind the stand-in Gateway of ``tests/fabric_support``; skipped
only when ``node`` or the built chaincode is missing (``.ci/run`` builds it). The conformance
suite and everything else a real network can show run on one: ``test_fabric_ledger.py``."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fedchain.errors import GatewayUnreachable, LedgerUnavailable, WriteUnconfirmed
from fedchain.ledger import Entry, Query, Record, parse_record
from fedchain.ledger.fabric import FabricLedger, unpack_seq
from fedchain.ledger.fabric.retry import Backoff
from fedchain.runtime.retry import publish, retry_unavailable
from tests.conformance.ledger_suite import run_record, task_record, update_record

if TYPE_CHECKING:
    from tests.fabric_support.fixtures import MakeNetwork, OpenFabric
    from tests.fabric_support.network import StandInNetwork

pytest_plugins = ["tests.fabric_support.fixtures"]


# -- what only the Fabric backend has: blocks, MVCC, resuming, retries ------------------------


def _started(
    open_fabric: OpenFabric, genesis: Record, network: StandInNetwork | None = None
) -> FabricLedger:
    """The aggregator's handle on a channel with the genesis, run r1 and task t1 (round 1)."""
    agg = open_fabric("org1", network=network)
    agg.metadata_publish(genesis)
    agg.metadata_publish([parse_record(run_record()), parse_record(task_record("t1", 1))])
    return agg


def _collect(ledger: FabricLedger, after: int, count: int) -> list[Entry]:
    got: list[Entry] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        got += ledger.wait(got[-1].seq if got else after, deadline - time.monotonic())
    return got


def _update(org: str, task: str = "t1", rnd: int = 1) -> Record:
    return parse_record(update_record(org, task, rnd))


def test_concurrent_transactions_share_a_block_in_one_order(
    make_network: MakeNetwork, open_fabric: OpenFabric, genesis_record: Record
) -> None:
    network = make_network(batch_size=2)
    _started(open_fabric, genesis_record, network)
    org2, org3 = open_fabric("org2", network=network), open_fabric("org3", network=network)
    watcher = open_fabric("org3", network=network)
    head = watcher.head()
    network.ledger.batch_timeout = 10.0  # the next block is cut when both have arrived
    with ThreadPoolExecutor(2) as pool:
        written = [e for batch in pool.map(lambda h: h.metadata_publish(_update(h.org)),
                                           [org2, org3]) for e in batch]  # fmt: skip
    places = sorted(unpack_seq(e.seq) for e in written)
    assert places[0][0] == places[1][0]  # one block
    assert [p[1:] for p in places] == [(0, 0), (1, 0)]  # positions 0 and 1, record 0 each
    followed = _collect(watcher, head, 2)
    queried = watcher.metadata_get(Query(kind="update"))
    assert followed == queried == sorted(written, key=lambda e: e.seq)
    assert all(e.ts > 0 and e.signer == e.record.org for e in followed)


def test_a_follower_asks_one_timestamp_query_per_task_not_per_update(
    make_network: MakeNetwork, open_fabric: OpenFabric, genesis_record: Record
) -> None:
    """``wait`` asks the chaincode for transaction times (events do not carry them): the updates
    of every organization to one task share one query."""
    network = make_network(batch_size=4)
    agg = _started(open_fabric, genesis_record, network)
    agg.metadata_publish(parse_record(task_record("t2", 1)))
    org2, org3 = open_fabric("org2", network=network), open_fabric("org3", network=network)
    before = agg.head()
    writes = [(h, _update(h.org, task)) for task in ("t1", "t2") for h in (org2, org3)]
    network.ledger.batch_timeout = 10.0  # one block, cut when all four have arrived
    with ThreadPoolExecutor(4) as pool:
        written = [e for batch in pool.map(lambda w: w[0].metadata_publish(w[1]), writes)
                   for e in batch]  # fmt: skip
    assert len({unpack_seq(e.seq)[0] for e in written}) == 1
    assert agg.head() == max(e.seq for e in written)  # all delivered; the newest one's time known
    network.service.evaluated.clear()
    followed = agg.wait(before, 0)
    assert followed == sorted(written, key=lambda e: e.seq)  # timestamps included
    assert network.service.evaluated == ["metadataGet"] * 2  # t1's and t2's (not 3, one per tx)


def test_a_transaction_that_loses_an_mvcc_race_runs_again(
    make_network: MakeNetwork, open_fabric: OpenFabric, genesis_record: Record
) -> None:
    network = make_network(batch_size=2)
    agg = _started(open_fabric, genesis_record, network)
    agg2 = open_fabric("org1", network=network)
    tasks = [parse_record(task_record(t, 1)) for t in ("t2", "t3")]
    network.ledger.batch_timeout = 1.0  # both share a block; the rerun waits alone (1 s)
    with ThreadPoolExecutor(2) as pool:
        list(
            pool.map(
                lambda pair: pair[0].metadata_publish(pair[1]), zip([agg, agg2], tasks, strict=True)
            )
        )
    codes = [s.code for s in network.ledger.statuses.values()]
    assert codes.count("MVCC_READ_CONFLICT") == 1  # both read the run's progress key
    order = [str(e.record.task) for e in agg.metadata_get(Query(kind="task"))]
    assert order[0] == "t1"
    assert sorted(order[1:]) == ["t2", "t3"]  # whichever won the race comes first


def test_head_catches_up_with_every_org_from_one_head_read(
    make_network: MakeNetwork, open_fabric: OpenFabric, genesis_record: Record
) -> None:
    network = make_network(batch_size=3)
    agg = _started(open_fabric, genesis_record, network)
    org2, org3 = open_fabric("org2", network=network), open_fabric("org3", network=network)
    writes = [(agg, parse_record(task_record("t2", 1))), (org2, _update("org2")),
              (org3, _update("org3"))]  # fmt: skip
    network.ledger.batch_timeout = 10.0  # one block, cut when all three have arrived
    with ThreadPoolExecutor(3) as pool:
        written = [e for batch in pool.map(lambda w: w[0].metadata_publish(w[1]), writes)
                   for e in batch]  # fmt: skip
    assert len({unpack_seq(e.seq)[0] for e in written}) == 1  # one block ...
    assert {s.code for s in network.ledger.statuses.values()} == {"VALID"}  # ... no conflict
    newest = max(e.seq for e in written)
    network.service.evaluated.clear()
    assert [h.head() for h in (agg, org2, org3)] == [newest] * 3
    # A handle whose event stream starts 0.3 s late still opens caught up: head() waits for it.
    network.service.faults["ChaincodeEvents"] = 1
    late = open_fabric("org2", network=network, backoff=Backoff(attempts=2, initial=0.3))
    assert late.head() == newest
    assert network.service.evaluated == ["metadataHead"] * 5  # never a metadataGet of everything
    assert [e.seq for e in late.wait(-1, 0)] == [e.seq for e in agg.metadata_get()]


def test_head_falls_back_to_every_record_on_a_channel_without_a_head(
    fabric_network: StandInNetwork, open_fabric: OpenFabric, genesis_record: Record
) -> None:
    agg = _started(open_fabric, genesis_record)
    # As a chaincode from before metadataHead leaves the world state: records, no head key.
    fabric_network.state.apply({"\x00head\x00": None}, (0, 0))
    fabric_network.service.evaluated.clear()
    fabric_network.service.faults["ChaincodeEvents"] = 1  # its stream starts 0.3 s late
    late = open_fabric("org2", backoff=Backoff(attempts=2, initial=0.3))
    assert fabric_network.service.evaluated == ["metadataHead", "metadataGet"]
    assert [e.seq for e in late.wait(-1, 0)] == [e.seq for e in agg.metadata_get()]
    assert late.head() == agg.head() > 0


def test_transient_failures_retry_the_same_transaction(
    fabric_network: StandInNetwork, open_fabric: OpenFabric, genesis_record: Record
) -> None:
    _started(open_fabric, genesis_record)
    org2 = open_fabric("org2")
    service = fabric_network.service
    service.calls.clear()
    service.faults.update({"Endorse": 2, "Submit": 1, "CommitStatus": 1})
    (entry,) = org2.metadata_publish(_update("org2"))
    steps = [(m, t) for m, t in service.calls if m in {"Endorse", "Submit", "CommitStatus"}]
    assert [m for m, _ in steps] == ["Endorse"] * 3 + ["Submit"] * 2 + ["CommitStatus"] * 2
    assert {t for _, t in steps} == {entry.hash.split(":")[0]}  # one transaction id throughout
    service.faults["Evaluate"] = 10
    with pytest.raises(LedgerUnavailable):
        org2.metadata_get()
    service.faults.clear()
    assert org2.metadata_get(Query(org="org2")) == [entry]


def test_an_unreachable_gateway_is_unavailable(
    open_fabric: OpenFabric, make_network: MakeNetwork
) -> None:
    """Unreachable when the handle opens: reported at once, not after the outage backoff
    (which ``test_a_gateway_gone_away_is_retried_by_the_backend_only`` shows still applies
    once the gateway has been reached)."""
    network = make_network()
    network.close()  # nothing listens there any more
    slept: list[float] = []
    with pytest.raises(GatewayUnreachable) as info:
        open_fabric("org1", network=network, sleep=slept.append)
    assert isinstance(info.value, LedgerUnavailable)
    assert info.value.retried
    assert info.value.endpoint == network.endpoint
    assert slept == []


QUICK = Backoff(attempts=3, initial=0.01, factor=2.0, maximum=0.02)


def test_the_runtime_does_not_retry_what_the_gateway_client_already_retried(
    fabric_network: StandInNetwork, open_fabric: OpenFabric, genesis_record: Record
) -> None:
    _started(open_fabric, genesis_record)
    org2 = open_fabric("org2", backoff=QUICK)
    service = fabric_network.service
    for method, operation in [
        ("Evaluate", org2.metadata_get),
        ("Endorse", lambda: org2.metadata_publish(_update("org2"))),
    ]:
        service.calls.clear()
        service.faults[method] = 100  # down for longer than anyone retries
        runtime_slept: list[float] = []
        with pytest.raises(LedgerUnavailable) as info:
            retry_unavailable(operation, what=method, attempts=5, sleep=runtime_slept.append)
        assert info.value.retried
        requests = [m for m, _ in service.calls if m != "ChaincodeEvents"]
        assert requests == [method] * QUICK.attempts  # one backoff's worth, not 5 × 3
        assert runtime_slept == []
        service.faults.clear()
    (entry,) = org2.metadata_publish(_update("org2"))  # back up: the same handle works
    assert entry.record.org == "org2"


def test_a_gateway_gone_away_is_retried_by_the_backend_only(
    make_network: MakeNetwork, open_fabric: OpenFabric, genesis_record: Record
) -> None:
    network = make_network()
    backend_slept: list[float] = []
    org1 = open_fabric("org1", network=network, backoff=QUICK, sleep=backend_slept.append)
    org1.metadata_publish(genesis_record)
    network.close()  # a real closed port from now on
    backend_slept.clear()
    runtime_slept: list[float] = []
    with pytest.raises(LedgerUnavailable) as info:
        retry_unavailable(org1.metadata_get, what="read", attempts=5, sleep=runtime_slept.append)
    assert info.value.retried
    assert backend_slept == list(QUICK.delays())  # one backoff: QUICK.attempts tries
    assert runtime_slept == []


def test_resumes_from_the_last_block_seen(
    fabric_network: StandInNetwork,
    open_fabric: OpenFabric,
    genesis_record: Record,
    tmp_path: Path,
) -> None:
    agg = _started(open_fabric, genesis_record)
    state = tmp_path / "org2.fabric-index"
    first = open_fabric("org2", resume_file=state)
    first.metadata_publish(_update("org2"))
    before = first.metadata_get()
    first.close()
    last_block = unpack_seq(before[-1].seq)[0]
    assert last_block > 1
    assert len(state.read_text().splitlines()) == 1 + 3  # header + 3 transactions
    agg.metadata_publish(parse_record(task_record("t2", 1)))
    again = open_fabric("org2", resume_file=state)
    assert fabric_network.service.event_starts[-1] == last_block  # not a replay from 0
    assert again.metadata_get() == agg.metadata_get()
    assert [e.record.task for e in again.wait(before[-1].seq, 5)] == ["t2"]


def test_a_resume_file_from_another_channel_is_dropped(
    make_network: MakeNetwork,
    open_fabric: OpenFabric,
    genesis_record: Record,
    tmp_path: Path,
) -> None:
    old, new = make_network(), make_network()
    state = tmp_path / "org1.fabric-index"
    _started(open_fabric, genesis_record, old)
    open_fabric("org1", network=old, resume_file=state).close()
    agg = open_fabric("org1", network=new, resume_file=state)
    assert new.service.event_starts[-1] == 0
    assert agg.metadata_get() == []
    agg.metadata_publish(genesis_record)
    assert len(state.read_text().splitlines()) == 2  # header + the new genesis only


def test_a_committed_write_the_event_stream_withholds_is_never_published_again(
    fabric_network: StandInNetwork, open_fabric: OpenFabric, genesis_record: Record
) -> None:
    """The transaction committed, but this handle cannot place it in ledger order yet: the
    backend says so (WriteUnconfirmed, naming it), the runtime does not publish a duplicate but
    carries on as written, and the write shows once the stream catches up."""
    agg = _started(open_fabric, genesis_record)
    agg.metadata_publish(parse_record(task_record("t2", 1)))
    service = fabric_network.service
    org2 = open_fabric("org2", backoff=QUICK, sync_timeout=0.3)
    fabric_network.ledger.hold_delivery()  # blocks are cut and committed, but not streamed
    service.calls.clear()
    with pytest.raises(WriteUnconfirmed, match="is committed") as info:
        org2.metadata_publish(_update("org2", "t1"))
    assert info.value.retried
    submitted = [t for m, t in service.calls if m == "Submit"]
    assert submitted == [info.value.tx_id]
    publish(org2, _update("org2", "t2"), what="announce")  # the runtime: no raise, no retry
    assert [m for m, _ in service.calls].count("Submit") == 2  # one transaction per write
    fabric_network.ledger.release_delivery()
    updates = org2.metadata_get(Query(kind="update"))
    assert [(e.record.org, e.record.task) for e in updates] == [("org2", "t1"), ("org2", "t2")]
