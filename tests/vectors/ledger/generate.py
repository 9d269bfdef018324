"""Generate the ledger vector files shared by the Python suite and the chaincode tests.

Run ``python tests/vectors/ledger/generate.py`` after changing the ledger contract; never edit
the JSON files by hand. Every scenario states the outcome it expects and the generator checks
it against the Python rules, so a vector that disagrees with the implementation cannot be
written. The chaincode tests replay the same files and must reach the same outcomes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fedchain.errors import RecordError, RuleViolation
from fedchain.hashing import sha256_hex
from fedchain.ledger.canonical import canonical_json
from fedchain.ledger.records import parse_record
from fedchain.ledger.rules import LedgerState

HERE = Path(__file__).parent
AGG, A, B = "org1", "org2", "org3"
H = [sha256_hex(bytes([i])) for i in range(16)]


def consortium(org: str = AGG, aggregator: str = AGG) -> dict[str, Any]:
    orgs = [{"id": o, "ca_sha256": H[i]} for i, o in enumerate((AGG, A, B))]
    return {
        "v": 1,
        "kind": "consortium",
        "org": org,
        "name": "hospitals",
        "aggregator": aggregator,
        "orgs": orgs,
    }


def run(run_id: str = "r1", org: str = AGG) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "run",
        "org": org,
        "run": run_id,
        "app_sha256": H[3],
        "strategy_sha256": H[4],
        "model_sha256": H[5],
        "config": {"rounds": 3, "lr": 0.05},
    }


def task(
    task_id: str, rnd: int, to: tuple[str, ...] = (AGG, A, B), org: str = AGG, run_id: str = "r1"
) -> dict[str, Any]:
    recipients = [{"org": o, "payload_sha256": H[6], "payload_size": 1024} for o in to]
    return {
        "v": 1,
        "kind": "task",
        "org": org,
        "run": run_id,
        "round": rnd,
        "task": task_id,
        "type": "train",
        "model_sha256": H[5],
        "deadline": 1_790_000_000_000,
        "recipients": recipients,
    }


def update(
    org: str, task_id: str, rnd: int, digest: str | None = None, ok: bool = True, run_id: str = "r1"
) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "update",
        "org": org,
        "run": run_id,
        "round": rnd,
        "task": task_id,
        "status": "ok" if ok else "error",
        "update_sha256": (digest or H[7]) if ok else None,
        "update_size": 2048 if ok else 0,
        "num_examples": 120 if ok else 0,
        "metrics": {"train_loss": 0.6931471805599453, "accuracy": 0.875} if ok else {},
        "error": None if ok else "out of memory",
    }


def keys(org: str, task_id: str, rnd: int) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "keys",
        "org": org,
        "run": "r1",
        "round": rnd,
        "task": task_id,
        "keys": {"enc": "11" * 32, "mask": "22" * 32},
    }


def selection(task_id: str, rnd: int, orgs: list[str], org: str = AGG) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "selection",
        "org": org,
        "run": "r1",
        "round": rnd,
        "task": task_id,
        "selected": orgs,
    }


def close(
    rnd: int,
    aggregated: list[tuple[str, str]],
    dropouts: tuple[str, ...] = (),
    rejected: tuple[str, ...] = (),
    org: str = AGG,
) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "close",
        "org": org,
        "run": "r1",
        "round": rnd,
        "model_sha256": H[8],
        "aggregated": [{"org": o, "update_sha256": d} for o, d in aggregated],
        "dropouts": [{"org": o, "stage": "train"} for o in dropouts],
        "rejected": [{"org": o, "reason": "non-finite values"} for o in rejected],
        "metrics": {"accuracy": 0.9, "num_examples": 240},
    }


def step(signer: str, records: Any, expect: str = "ok") -> dict[str, Any]:
    return {
        "signer": signer,
        "records": records if isinstance(records, list) else [records],
        "expect": expect,
    }


def opened(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """A consortium, a run and a round-1 task for all three orgs, then ``extra`` steps."""
    return [step(AGG, consortium()), step(AGG, run()), step(AGG, task("t1", 1)), *extra]


def scenarios() -> dict[str, list[dict[str, Any]]]:
    u2, u3 = update(A, "t1", 1, H[9]), update(B, "t1", 1, H[10])
    return {
        "happy_path_two_rounds": opened(
            step(A, keys(A, "t1", 1)),
            step(B, keys(B, "t1", 1)),
            step(A, u2),
            step(B, u3),
            step(AGG, update(AGG, "t1", 1, ok=False)),
            step(AGG, selection("t1", 1, [A, B])),
            step(AGG, close(1, [(A, H[9]), (B, H[10])], rejected=(AGG,))),
            step(AGG, [task("t2", 2, (A, B)), task("t2-eval", 2, (A, B))]),
            step(A, update(A, "t2", 2)),
            step(AGG, close(2, [(A, H[7])], dropouts=(B,))),
        ),
        "consortium_must_come_first": [step(AGG, run(), "consortium.first")],
        "consortium_only_once": [
            step(AGG, consortium()),
            step(AGG, consortium(), "consortium.exists"),
        ],
        "consortium_not_in_another_name": [
            step(AGG, consortium(org=A, aggregator=A), "identity.mismatch")],
        "consortium_written_by_its_aggregator": [step(A, consortium(org=A), "consortium.signer")],
        "publish_only_as_yourself": opened(step(A, update(B, "t1", 1), "identity.mismatch")),
        "unknown_organization": opened(step("org9", update("org9", "t1", 1), "org.unknown")),
        "unknown_recipient": opened(step(AGG, task("t9", 1, (A, "org9")), "org.unknown")),
        "only_aggregator_starts_runs": [
            step(AGG, consortium()),
            step(A, run(org=A), "role.aggregator_only"),
        ],
        "only_aggregator_opens_tasks": opened(
            step(A, task("t9", 1, org=A), "role.aggregator_only")
        ),
        "only_aggregator_selects": opened(
            step(A, u2), step(A, selection("t1", 1, [A], org=A), "role.aggregator_only")
        ),
        "only_aggregator_closes": opened(
            step(A, u2), step(A, close(1, [(A, H[9])], org=A), "role.aggregator_only")
        ),
        "run_ids_are_unique": opened(step(AGG, run(), "run.duplicate")),
        "task_needs_a_run": [
            step(AGG, consortium()),
            step(AGG, task("t1", 1, run_id="nope"), "run.unknown"),
        ],
        "task_ids_are_unique": opened(step(AGG, task("t1", 2), "task.duplicate")),
        "update_needs_a_task": opened(step(A, update(A, "t404", 1), "task.unknown")),
        "update_round_must_match_task": opened(step(A, update(A, "t1", 2), "task.round_mismatch")),
        "update_only_if_addressed": opened(
            step(AGG, task("t2", 1, (AGG, A))), step(B, update(B, "t2", 1), "update.not_recipient")
        ),
        "update_at_most_once_per_task": opened(
            step(A, u2), step(A, update(A, "t1", 1, H[11]), "update.duplicate")
        ),
        "replayed_update_after_close_refused": opened(
            step(A, u2), step(AGG, close(1, [(A, H[9])])), step(B, u3, "round.closed")
        ),
        "rounds_do_not_go_back_after_close": opened(
            step(A, u2),
            step(AGG, close(1, [(A, H[9])])),
            step(AGG, task("t0", 1), "round.not_increasing"),
        ),
        "rounds_do_not_go_back_before_close": opened(
            step(AGG, task("t2", 2)), step(AGG, task("t0", 1), "round.not_increasing")
        ),
        "keys_only_if_addressed": opened(
            step(AGG, task("t2", 1, (AGG, A))), step(B, keys(B, "t2", 1), "keys.not_recipient")
        ),
        "keys_at_most_once_per_task": opened(
            step(A, keys(A, "t1", 1)), step(A, keys(A, "t1", 1), "keys.duplicate")
        ),
        "selection_only_of_announced_updates": opened(
            step(A, u2), step(AGG, selection("t1", 1, [A, B]), "selection.not_announced")
        ),
        "selection_only_of_ok_updates": opened(
            step(B, update(B, "t1", 1, ok=False)),
            step(AGG, selection("t1", 1, [B]), "selection.not_announced"),
        ),
        "selection_at_most_once": opened(
            step(A, u2),
            step(AGG, selection("t1", 1, [A])),
            step(AGG, selection("t1", 1, [A]), "selection.duplicate"),
        ),
        "close_needs_a_task_in_the_round": opened(step(AGG, close(2, []), "close.no_task")),
        "close_only_announced_updates": opened(
            step(A, u2), step(AGG, close(1, [(A, H[12])]), "close.not_announced")
        ),
        "close_only_selected_updates": opened(
            step(A, u2),
            step(B, u3),
            step(AGG, selection("t1", 1, [A])),
            step(AGG, close(1, [(A, H[9]), (B, H[10])]), "close.not_selected"),
        ),
        "close_dropouts_must_have_had_a_task": opened(
            step(AGG, task("t2", 2, (A,))),
            step(A, update(A, "t2", 2)),
            step(AGG, close(2, [(A, H[7])], dropouts=(B,)), "close.not_participant"),
        ),
        "close_once_per_round": opened(
            step(A, u2), step(AGG, close(1, [(A, H[9])])), step(AGG, close(1, []), "round.closed")
        ),
        "batch_is_all_or_nothing": opened(
            step(AGG, [task("t2", 1), task("t2", 1)], "task.duplicate"), step(AGG, task("t2", 1))
        ),
        "malformed_record_refused": opened(
            step(A, {**u2, "num_examples": -1}, "record.invalid"),
            step(A, {**u2, "extra": 1}, "record.invalid"),
            step(A, {**u2, "status": "ok", "update_sha256": None}, "record.invalid"),
            step(A, {**u2, "metrics": {"loss": "high"}}, "record.invalid"),
            step(A, u2),
        ),
    }


def outcome(state: LedgerState, signer: str, raw: list[dict[str, Any]]) -> str:
    try:
        records = [parse_record(r) for r in raw]
    except RecordError:
        return "record.invalid"
    try:
        state.admit_all(records, signer)
    except RuleViolation as exc:
        return exc.rule
    return "ok"


def build_sequences() -> dict[str, Any]:
    for name, steps in scenarios().items():
        state = LedgerState()
        for i, s in enumerate(steps):
            got = outcome(state, s["signer"], s["records"])
            if got != s["expect"]:
                sys.exit(f"scenario {name} step {i}: expected {s['expect']}, rules say {got}")
    return {
        "comment": "generated by generate.py; do not edit",
        "scenarios": [{"name": n, "steps": s} for n, s in scenarios().items()],
    }


def build_canonical() -> dict[str, Any]:
    samples: list[tuple[str, Any]] = [
        ("consortium", consortium()),
        ("run_with_float_config", run()),
        ("task", task("t1", 1)),
        ("update_ok", update(A, "t1", 1)),
        ("update_error", update(B, "t1", 1, ok=False)),
        ("keys", keys(A, "t1", 1)),
        ("selection", selection("t1", 1, [B, A])),
        ("close", close(1, [(A, H[9])], dropouts=(B,), rejected=(AGG,))),
        (
            "unicode_and_escapes",
            {
                **update(A, "t1", 1, ok=False),
                "error": 'naïve "quote" back\\slash \n tab\t \u0001 é 漢 😀',
            },
        ),
        (
            "numbers",
            {
                **update(A, "t1", 1),
                "metrics": {
                    "int": 42,
                    "neg": -7,
                    "zero": 0.0,
                    "negzero": -0.0,
                    "whole": 3.0,
                    "tiny": 1e-7,
                    "small": 0.000001,
                    "big": 1e21,
                    "bigint_float": 1e20,
                    "third": 1 / 3,
                    "pi": 3.141592653589793,
                    "max_safe": 2**53 - 1,
                    "min_sub": 5e-324,
                    "e16": 1e16,
                    "mixed": 123456.789e3,
                },
            },
        ),
    ]
    vectors = []
    for name, value in samples:
        canonical = canonical_json(parse_record(value).data)
        vectors.append(
            {
                "name": name,
                "record": value,
                "canonical": canonical.decode("utf-8"),
                "sha256": sha256_hex(canonical),
            }
        )
    invalid = [
        ("nan_metric", {**update(A, "t1", 1), "metrics": {"x": "NaN"}}),
        ("unsafe_integer", {**update(A, "t1", 1), "num_examples": 2**53}),
        ("unknown_kind", {**run(), "kind": "delete"}),
        ("wrong_version", {**run(), "v": 2}),
        ("bad_hash", {**run(), "app_sha256": "ABC"}),
        ("bad_org_id", {**run(), "org": "org 1"}),
        ("missing_field", {k: v for k, v in run().items() if k != "config"}),
        ("oversized", {**update(A, "t1", 1, ok=False), "error": "x" * 2000}),
        ("bool_as_int", {**update(A, "t1", 1), "round": True}),
        ("kind_not_a_string", {**run(), "kind": ["run"]}),
    ]
    for name, value in invalid:
        try:
            parse_record(value)
        except RecordError:
            continue
        sys.exit(f"invalid vector {name} was accepted")
    return {
        "comment": "generated by generate.py; do not edit",
        "valid": vectors,
        "invalid": [{"name": n, "record": v} for n, v in invalid],
    }


def write(name: str, value: Any) -> None:
    text = json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write("canonical.json", build_canonical())
    write("sequences.json", build_sequences())
    print("wrote", HERE / "canonical.json", "and", HERE / "sequences.json")
