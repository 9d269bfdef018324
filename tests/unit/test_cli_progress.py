"""The progress line of ``fedchain demo``, ``fedchain-server`` and ``fedchain-client``.

Events of the whole run (``consortium``, ``listening``, ``run``, ``audited``) carry no round:
the line then names the round in progress, or none before the first one (never ``round None``).
The console is not a terminal, so rich prints the line once, as it stands when the sink closes.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from fedchain.cli.progress import EventSink

Events = list[tuple[str, dict[str, Any]]]
ROUND_1: Events = [
    ("task", {"round": 1, "task": "r1.train.1", "type": "train", "recipients": 3}),
    ("announced", {"round": 1, "org": "org2", "status": "ok", "task": "r1.train.1"}),
    ("closed", {"round": 1, "model_sha256": "ab" * 32}),
]


def final_line(events: Events, rounds: int | None = 2) -> str:
    out = io.StringIO()
    with EventSink(as_json=False, rounds=rounds, label="demo",
                   console=Console(file=out, width=200)) as sink:  # fmt: skip
        for name, data in events:
            sink(name, data)
    return out.getvalue().strip()


@pytest.mark.parametrize(
    ("events", "shown"),
    [
        ([("consortium", {"ledger": "Fabric channel 'fedchain'", "orgs": ["org1"]})],
         "demo: starting the organizations"),
        ([("listening", {"address": "127.0.0.1:9443", "run": "r"})], "demo: listening"),
        ([("run", {"run": "r", "model_sha256": "00" * 32})], "demo: run started"),
        ([*ROUND_1, ("audited", {"entries": 9, "ok": True})], "demo: round 1 · ledger checked"),
        ([*ROUND_1, ("run", {"run": "r", "model_sha256": "00" * 32})], "demo: round 1 · run"),
    ],
)  # fmt: skip
def test_events_without_a_round_never_show_round_none(events: Events, shown: str) -> None:
    line = final_line(events)
    assert "None" not in line
    assert line.startswith(shown)


def test_a_closed_round_advances_the_bar() -> None:
    assert "1/2" in final_line(ROUND_1)
    assert "0/2" in final_line(ROUND_1[:2])


def client_output(events: Events) -> str:
    out = io.StringIO()
    with EventSink(as_json=False, rounds=None, label="org2",
                   console=Console(file=out, width=200)) as sink:  # fmt: skip
        for name, data in events:
            sink(name, data)
    return out.getvalue()


def state(name: str, message: str) -> tuple[str, dict[str, Any]]:
    return ("state", {"state": name, "message": message})


def test_a_client_prints_each_change_of_state_and_ends_with_a_full_bar() -> None:
    """A client's bar stayed at "0/1" after its run finished, and it said nothing else."""
    out = client_output([
        state("waiting-aggregator", "waiting for the aggregator at 127.0.0.1:9443"),
        state("attached", "attached to the aggregator at 127.0.0.1:9443"),
        ("run", {"run": "r", "rounds": 2}),
        state("training", "round 1: training"),
        ("closed", {"run": "r", "round": 1}),
        state("training", "round 2: training"),
        ("closed", {"run": "r", "round": 2}),
        state("finished", "run r finished (2 rounds); exiting"),
    ])  # fmt: skip
    lines = out.splitlines()
    assert lines[:5] == [
        "org2: waiting for the aggregator at 127.0.0.1:9443",
        "org2: attached to the aggregator at 127.0.0.1:9443",
        "org2: round 1: training",
        "org2: round 2: training",
        "org2: run r finished (2 rounds); exiting",
    ]
    assert "2/2" in lines[-1]
    assert "0/1" not in out
    assert "None" not in out


def test_a_finished_run_of_unknown_length_still_ends_complete() -> None:
    out = client_output([state("finished", "run r finished (3 rounds); exiting")])
    assert "0/0" in out.splitlines()[-1]
    assert "0/1" not in out
