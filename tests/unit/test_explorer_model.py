"""The explorer's view of a ledger (``fedchain.explorer.model``) and its SVG charts, from
entries built in memory: rounds, selection, refusals, dropouts, masked weights under secure
aggregation, contributions and the model lineage."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fedchain.explorer.charts import line_chart
from fedchain.explorer.model import LedgerView
from fedchain.ledger import Entry, parse_record


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entries(*records: dict[str, Any]) -> list[Entry]:
    out = []
    for seq, data in enumerate(records):
        record = parse_record({"v": 1, "run": "r", **data})
        out.append(Entry(seq, record, record.org, 1_000 * seq, sha(str(seq))))
    return out


def task(rnd: int, task_id: str, kind: str = "train") -> dict[str, Any]:
    recipients = [{"org": o, "payload_sha256": sha("m"), "payload_size": 1} for o in ("a", "b")]
    return {"kind": "task", "org": "agg", "round": rnd, "task": task_id, "type": kind,
            "model_sha256": None, "deadline": 0, "recipients": recipients}  # fmt: skip


def update(org: str, rnd: int, task_id: str, n: int, ok: bool = True) -> dict[str, Any]:
    return {"kind": "update", "org": org, "round": rnd, "task": task_id,
            "status": "ok" if ok else "error", "update_sha256": sha(org + task_id) if ok else None,
            "update_size": 1, "num_examples": n, "metrics": {"loss": 0.5},
            "error": None if ok else "boom"}  # fmt: skip


def close(rnd: int, model: str, aggregated: list[str], **extra: Any) -> dict[str, Any]:
    return {"kind": "close", "org": "agg", "round": rnd, "model_sha256": model,
            "aggregated": [{"org": o, "update_sha256": sha(o)} for o in aggregated],
            "dropouts": extra.get("dropouts", []), "rejected": extra.get("rejected", []),
            "metrics": extra.get("metrics", {})}  # fmt: skip


RUN = {"kind": "run", "org": "agg", "app_sha256": sha("app"), "strategy_sha256": sha("s"),
       "model_sha256": sha("m0"), "config": {"rounds": 3}}  # fmt: skip


def build() -> LedgerView:
    view = LedgerView()
    view.add_all(entries(
        RUN,
        task(1, "t1"), update("a", 1, "t1", 10), update("b", 1, "t1", 20),
        task(1, "e1", "evaluate"), update("a", 1, "e1", 3), update("b", 1, "e1", 4),
        {"kind": "selection", "org": "agg", "round": 1, "task": "t1", "selected": ["a"]},
        close(1, sha("m1"), ["a"], rejected=[{"org": "b", "reason": "NaN"}],
              metrics={"acc": 0.5}),
        task(2, "t2"), {"kind": "keys", "org": "a", "round": 2, "task": "t2",
                        "keys": {"pk": "ab"}},
        update("a", 2, "t2", 0), update("b", 2, "t2", 0, ok=False),
        close(2, sha("m1"), ["a"], dropouts=[{"org": "b", "stage": "secagg.unmask"}],
              metrics={"acc": 0.6}),
    ))  # fmt: skip
    return view


def test_rounds_show_selection_refusals_and_the_training_weight() -> None:
    run = build().runs["r"]
    assert (run.rounds_done, run.planned, run.status) == (2, 3, "in progress")
    first = run.rounds[1]
    assert first.examples() == {"a": 10, "b": 20}  # the train update's, not the evaluate one's
    assert first.selected() == ["a"]
    assert [(a.org, a.task, a.selected) for a in first.announcements] == [
        ("a", "t1", True),
        ("b", "t1", False),
        ("a", "e1", None),
        ("b", "e1", None),
    ]
    assert first.rejected == [{"org": "b", "reason": "NaN"}]
    second = run.rounds[2]
    assert second.secure
    assert second.dropouts == [{"org": "b", "stage": "secagg.unmask"}]
    assert run.series("acc") == [(1, 0.5), (2, 0.6)]


def test_contributions_count_each_organization_and_leave_masked_weights_out() -> None:
    rows = {c.org: c for c in build().runs["r"].contributions()}
    a, b = rows["a"], rows["b"]
    assert (a.joined, a.selected, a.aggregated, a.refused, a.dropped) == (2, 1, 2, 0, 0)
    assert (a.examples, a.masked_rounds) == (10, 1)
    assert (b.joined, b.selected, b.aggregated, b.refused, b.dropped, b.errors) == \
        (2, 0, 0, 1, 1, 1)  # fmt: skip
    assert (b.examples, b.masked_rounds) == (20, 0)


def test_lineage_names_each_global_model_and_a_kept_one() -> None:
    steps = build().runs["r"].lineage()
    assert [(s.round, s.sha256, s.what) for s in steps] == [
        (0, sha("m0"), "initial model"),
        (1, sha("m1"), "aggregated"),
        (2, sha("m1"), "unchanged (previous model kept)"),
    ]


def test_an_entry_is_taken_once() -> None:
    view = build()
    count = view.count
    view.add_all(entries(RUN))  # seq 0 again: already seen
    assert view.count == count


def test_a_chart_has_one_point_per_round() -> None:
    points = [(n, 1.0 / n) for n in range(1, 8)]
    svg = line_chart("loss<1>", points)
    assert len(re.findall(r'<circle class="pt" data-round="(\d+)"', svg)) == 7
    assert 'data-metric="loss&lt;1&gt;"' in svg  # escaped
    assert line_chart("x", []) == ""
    flat = line_chart("x", [(1, 2.0), (2, 2.0)])  # a constant series still draws
    assert flat.count('class="pt"') == 2


def test_the_run_end_marker_decides_the_status_and_is_never_charted() -> None:
    for value, status in ((1, "finished"), (0, "failed")):
        view = LedgerView()
        metrics = {"acc": 0.5, "fedchain:run-end": value}
        view.add_all(entries(RUN, task(1, "t1"), update("a", 1, "t1", 10),
                             close(1, sha("m1"), [], metrics=metrics)))  # fmt: skip
        run = view.runs["r"]
        assert (run.rounds_done, run.planned, run.status) == (1, 3, status)  # ended early
        assert run.rounds[1].end == value
        assert run.metric_names() == ["acc"]
        assert run.rounds[1].metrics == {"acc": 0.5}
