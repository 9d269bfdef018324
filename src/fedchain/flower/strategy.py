"""``LedgerStrategy``: wrap any Flower strategy to record round semantics and enforce a quorum.

Like Flower's DP wrappers it stores the inner strategy, delegates every method and intercepts
only what it must: the model hash before and after aggregation, the updates aggregated, the
dropouts and metrics (the round's ``close`` record, written through ``LedgerGrid``), a quorum
(too few valid replies: the round keeps the previous model), the global models saved by hash,
and resuming a run from the last closed round after the aggregator restarts.

No reply can take the aggregator down (G11): an exception raised by the inner strategy while
aggregating, or an aggregate that is not finite or does not fit the model, is caught at the
round. The round keeps the previous model, and its ``close`` record lists the organizations
whose replies were in that aggregation as dropouts at stage ``aggregate:<exception>``
(``aggregate-evaluate:<exception>`` for evaluation). A floating aggregate is cast to the
model's dtype (Flower's FedAdam returns float64 for a float32 model).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from fedchain.runtime.arrays import arrays_sha256, load_model, save_model
from fedchain.runtime.grid import LedgerGrid
from fedchain.runtime.runs import strategy_sha256

__all__ = ["LedgerStrategy"]

log = logging.getLogger(__name__)
EvaluateFn = Callable[[int, ArrayRecord], MetricRecord | None]
_NOT_A_STAGE = re.compile(r"[^A-Za-z0-9._:-]")


class UnusableAggregate(ValueError):
    """The inner strategy returned a model that is not finite or does not fit the last one."""


class LedgerStrategy(Strategy):
    """Records every round of ``inner`` on the ledger; aggregates only with ``min_replies``."""

    def __init__(
        self, inner: Strategy, *, min_replies: int = 1, models_dir: Path | None = None
    ) -> None:
        self.inner = inner
        self.min_replies = min_replies
        self.models_dir = models_dir
        self._grid: LedgerGrid | None = None
        self._model: dict[int, str] = {}
        self._train_metrics: dict[int, dict[str, Any]] = {}
        self._arrays: ArrayRecord | None = None  # the model sent in the round in progress
        # Rounds already closed on the ledger when this process started (resume). Flower's loop
        # counts from 1 again; ``inner`` (and through it the apps) is given the ledger's round.
        self._offset = 0
        # What ``inner`` is told: the ledger's round after a restart (it goes on), Flower's own
        # round (from 1) for a later strategy of the same ServerApp (it starts afresh).
        self._inner_offset = 0
        self._rounds = 0  # rounds this process runs (Flower's loop counts 1.._rounds)

    def summary(self) -> None:
        log.info("LedgerStrategy(min_replies=%d) wrapping:", self.min_replies)
        self.inner.summary()

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> Result:
        """Run ``inner``'s loop; on a ``LedgerGrid``, start or resume the ledger run first."""
        if isinstance(grid, LedgerGrid):
            self._grid = grid
            initial_arrays, num_rounds = self._resume(grid, initial_arrays, num_rounds)
        if num_rounds <= 0:
            log.info("every round of this run is already closed on the ledger")
            return Result(arrays=initial_arrays)
        self._rounds = num_rounds
        if evaluate_fn is not None and self._grid is not None:
            evaluate_fn = self._recording(evaluate_fn, self._grid)
        return super().start(
            grid, initial_arrays, num_rounds, timeout, train_config, evaluate_config, evaluate_fn
        )

    def _recording(self, evaluate_fn: EvaluateFn, grid: LedgerGrid) -> EvaluateFn:
        """``evaluate_fn`` whose metrics also go on the round's ``close`` record, named
        ``serverapp.<name>`` (Flower's ``evaluate_metrics_serverapp``)."""

        def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            metrics = evaluate_fn(server_round, arrays)
            if metrics is not None and server_round > 0:
                named = {f"serverapp.{key}": value for key, value in metrics.items()}
                grid.add_close_metrics(server_round + self._offset, named)
            return metrics

        return evaluate

    def _resume(
        self, grid: LedgerGrid, arrays: ArrayRecord, rounds: int
    ) -> tuple[ArrayRecord, int]:
        if grid.strategies_started:  # a later strategy of the same ServerApp, not a restart:
            grid.strategies_started += 1  # its own model; rounds numbered on after the last
            self._offset = grid.last_round()
            grid.round_offset = self._offset  # its messages' group ids count from 1 again
            self._model[self._offset] = arrays_sha256(arrays)
            return arrays, rounds
        grid.strategies_started += 1
        point = grid.resume_point()
        models = self.models_dir or grid.settings.models_dir
        if not point.started:
            digest = save_model(models, arrays) if models else arrays_sha256(arrays)
            grid.ensure_run(digest, strategy_sha256(self.inner))
            self._model[0] = digest
            return arrays, rounds
        grid.ensure_run(point.model_sha256 or "0" * 64)
        self._offset = self._inner_offset = point.rounds_closed
        if point.rounds_closed and point.model_sha256 and models is not None:
            arrays = load_model(models, point.model_sha256)
            log.info(
                "resuming after round %d from model %s",
                point.rounds_closed,
                point.model_sha256[:12],
            )
        self._model[self._offset] = point.model_sha256 or arrays_sha256(arrays)
        return arrays, rounds - point.rounds_closed

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        rnd = server_round + self._offset
        if rnd - 1 not in self._model:
            self._model[rnd - 1] = arrays_sha256(arrays)
        if self._grid is not None:  # spare the grid hashing the same model again
            self._grid.remember_model(arrays, self._model[rnd - 1])
        self._arrays = arrays
        return self.inner.configure_train(self._inner(server_round), arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        rnd = server_round + self._offset
        valid = [r for r in replies if not r.has_error()]
        before = self._model.get(rnd - 1)
        if len(valid) < self.min_replies:
            log.warning(
                "round %d: %d valid replies < quorum %d; model unchanged",
                rnd,
                len(valid),
                self.min_replies,
            )
            self._model[rnd] = before or ""
            if self._grid is not None:
                self._grid.round_log(rnd).aggregated.clear()
            return None, None
        try:
            arrays, metrics = self.inner.aggregate_train(self._inner(server_round), replies)
            if arrays is not None and self._arrays is not None:
                arrays = _fit_aggregate(arrays, self._arrays)
        except Exception as exc:  # no reply may stop the aggregator (G11)
            log.exception("round %d: aggregation failed; model unchanged", rnd)
            self._model[rnd] = before or ""
            self._train_metrics[rnd] = {}
            self._record_failure(rnd, "aggregate", exc, replies)
            return None, None
        if arrays is None:
            self._model[rnd] = before or ""
        else:
            models = self.models_dir or (self._grid.settings.models_dir if self._grid else None)
            self._model[rnd] = save_model(models, arrays) if models else arrays_sha256(arrays)
        self._train_metrics[rnd] = dict(metrics or {})
        return arrays, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        rnd = server_round + self._offset
        if self._grid is not None and self._model.get(rnd):
            self._grid.remember_model(arrays, self._model[rnd])
        return self.inner.configure_evaluate(self._inner(server_round), arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        rnd = server_round + self._offset
        replies = list(replies)
        try:
            metrics = self.inner.aggregate_evaluate(self._inner(server_round), replies)
        except Exception as exc:  # no reply may stop the aggregator (G11)
            log.exception("round %d: aggregating the evaluation failed", rnd)
            self._record_failure(rnd, "aggregate-evaluate", exc, replies)
            metrics = None
        if self._grid is not None:
            merged = {**self._train_metrics.pop(rnd, {}), **dict(metrics or {})}
            merged.pop("num-examples", None)
            self._grid.close_round(
                rnd,
                model_sha256=self._model.get(rnd) or None,
                metrics=merged,
                defer=server_round < self._rounds,  # rides with the next round's tasks
            )
        return metrics

    def _inner(self, server_round: int) -> int:
        """The round number ``inner`` is given for Flower's ``server_round``."""
        return server_round + self._inner_offset

    def _record_failure(
        self, rnd: int, what: str, exc: Exception, replies: list[Message]
    ) -> None:
        """Note on the round's ``close`` record that its aggregation failed: the organizations
        whose replies were in it become dropouts at stage ``<what>:<exception type>``."""
        if self._grid is None:
            return
        stage = _NOT_A_STAGE.sub("-", f"{what}:{type(exc).__name__}")[:64]
        rlog = self._grid.round_log(rnd)
        orgs = set(rlog.aggregated)
        for reply in replies:
            if not reply.has_error() and reply.metadata.src_node_id in self._grid.nodes:
                orgs.add(self._grid.nodes.org(reply.metadata.src_node_id))
        if what == "aggregate":
            rlog.aggregated.clear()
        for org in sorted(orgs):
            rlog.drop(org, stage)


def _fit_aggregate(new: ArrayRecord, old: ArrayRecord) -> ArrayRecord:
    """``new`` in the model's floating dtypes (Flower's FedAdam returns float64 for a float32
    model, and float32 replies would then no longer fit it); ``UnusableAggregate`` if its keys
    or shapes differ from the model's, a floating array became another kind, or it holds NaN/Inf
    (after the cast: a value beyond float32's range is Inf)."""
    if list(new.keys()) != list(old.keys()):
        raise UnusableAggregate(f"aggregate keys {list(new.keys())[:8]} differ from the model's")
    fitted = {}
    for key, array in new.items():
        values, dtype = array.numpy(), np.dtype(old[key].dtype)
        if values.shape != tuple(old[key].shape):
            raise UnusableAggregate(f"aggregate array {key} has shape {list(values.shape)}")
        if dtype.kind == "f" and values.dtype != dtype:
            if values.dtype.kind != "f":
                raise UnusableAggregate(f"aggregate array {key} is {values.dtype}, not {dtype}")
            with np.errstate(over="ignore"):
                values = values.astype(dtype)
            array = Array(values)
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            raise UnusableAggregate(f"aggregate array {key} holds NaN or Inf")
        fitted[key] = array
    return ArrayRecord(fitted)
