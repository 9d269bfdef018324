"""``SecureAggregation``: wrap a Flower strategy so it only ever sees the unmasked sum.

Like Flower's DP wrappers it stores the inner strategy, delegates every method and intercepts
only training. ``configure_train`` runs the setup and key-exchange stages through the grid it is
given and returns the inner strategy's train messages with each organization's encrypted shares
attached; the client mod (:mod:`fedchain.flower.secagg_mod`) masks the trained reply;
``aggregate_train`` runs the unmask stage and hands the inner strategy **one** reply holding the
weighted mean (the original array keys, shapes and dtypes) and a ``MetricRecord`` with
``num-examples`` = the total weight plus the declared metrics' weighted means. FedAvg, FedProx,
FedAvgM, FedAdam, FedAdagrad, FedYogi therefore compute what they would from plain replies.
Strategies that need individual updates (Krum, median, trimmed mean, Bulyan, q-FedAvg,
server-side DP clipping, XGBoost) cannot work on a sum and are refused.

On a :class:`~fedchain.runtime.grid.LedgerGrid` the round's ``close`` record lists the masked
updates actually in the sum and, per organization, the stage it dropped at
(``secagg.advertise_keys`` / ``secagg.share_keys`` / ``secagg.collect_masked`` /
``secagg.unmask``); an organization left out because its share boxes did not open (or because
it accused neighbours of that) is listed under ``rejected`` with a ``secagg.misbehaving: ...``
reason naming its accusers, whether the round completed or aborted. Compose as
``LedgerStrategy(SecureAggregation(FedAvg(...)))``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp import strategy as fs

from fedchain.errors import ConfigError, SecAggError
from fedchain.flower.secagg_codec import MaskingSpec
from fedchain.flower.secagg_layout import ArrayLayout
from fedchain.flower.secagg_round import RoundReport, SecureRound, model_of
from fedchain.runtime.grid import LedgerGrid
from fedchain.secagg import RoundConfig, disputes
from fedchain.secagg.graph import effective_degree

__all__ = ["INCOMPATIBLE", "SecureAggregation"]

log = logging.getLogger(__name__)

INCOMPATIBLE: tuple[type[fs.Strategy], ...] = (
    fs.FedMedian, fs.FedTrimmedAvg, fs.Krum, fs.MultiKrum, fs.Bulyan, fs.QFedAvg,
    fs.DifferentialPrivacyServerSideFixedClipping, fs.DifferentialPrivacyServerSideAdaptiveClipping,
    fs.FedXgbBagging, fs.FedXgbCyclic,
)
"""Strategies that need each update on its own: they cannot run on a secure sum."""


def _refuse_individual(strategy: fs.Strategy) -> None:
    """ConfigError if ``strategy``, or one it wraps (Flower's client-side DP wrappers keep
    theirs in ``strategy``, ours in ``inner``), needs individual updates."""
    path: list[str] = []
    current: object = strategy
    while isinstance(current, fs.Strategy) and len(path) < 16:  # a wrapper chain, not a cycle
        path.append(type(current).__name__)
        if isinstance(current, INCOMPATIBLE):
            inside = f" (inside {' inside '.join(reversed(path[:-1]))})" if path[:-1] else ""
            raise ConfigError(f"{path[-1]}{inside} needs individual updates; it cannot "
                              "aggregate a secure sum")  # fmt: skip
        current = getattr(current, "strategy", None) or getattr(current, "inner", None)


class SecureAggregation(fs.Strategy):
    """Pairwise-masked secure aggregation around ``inner`` (any averaging strategy).

    ``clip`` bounds every model coordinate (values beyond are clipped before masking);
    ``max_weight`` bounds the sample count of one organization -- keep it close to the largest
    real one, the quantization error grows with ``max_weight / mean weight``. ``threshold``
    defaults to the smallest strict majority of an organization and its ``degree`` neighbours
    (``degree=None``: all-to-all). ``metrics`` names reply metrics that are summed securely
    too (each within ``±metric_bound``); other reply metrics never leave the organization.
    ``stage_timeout`` is passed to ``grid.send_and_receive`` for each extra stage.
    """

    def __init__(
        self,
        inner: fs.Strategy,
        *,
        max_weight: int,
        clip: float = 8.0,
        threshold: int | None = None,
        degree: int | None = None,
        metrics: Sequence[str] = (),
        metric_bound: float = 1e3,
        weight_key: str = "num-examples",
        stochastic: bool = True,
        stage_timeout: float | None = None,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        _refuse_individual(inner)
        if not (clip > 0 and max_weight >= 1) or (threshold is not None and threshold < 2):
            raise ConfigError("need clip > 0, max_weight >= 1 and threshold >= 2")
        self.inner = inner
        self.max_weight, self.clip = max_weight, clip
        self.threshold, self.degree = threshold, degree
        self.spec = MaskingSpec(weight_key, tuple(metrics), metric_bound)
        self.stochastic, self.stage_timeout = stochastic, stage_timeout
        self._entropy = entropy
        self._rounds: dict[int, SecureRound] = {}
        self.reports: dict[int, RoundReport] = {}

    def summary(self) -> None:
        log.info("SecureAggregation(clip=%s, max_weight=%d, threshold=%s, degree=%s) wrapping:",
                 self.clip, self.max_weight, self.threshold or "majority",
                 self.degree or "all")
        self.inner.summary()

    # -- training -------------------------------------------------------------------------

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The inner strategy's train messages, after setup and key exchange."""
        train = list(self.inner.configure_train(server_round, arrays, config, grid))
        if not train:
            return []
        secure = SecureRound(grid, self._config(server_round, train), self.spec, train,
                             group_id=str(server_round), timeout=self.stage_timeout)
        self.reports[server_round] = secure.report
        try:
            messages = secure.prepare()
        except SecAggError:
            _record(grid, server_round, secure.report)
            return []
        self._rounds[server_round] = secure
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Unmask the sum of the masked replies; the inner strategy aggregates it alone."""
        secure = self._rounds.pop(server_round, None)
        if secure is None:
            return None, None  # setup failed or nothing was sampled: nothing to aggregate
        try:
            result = secure.finish(replies)
        except SecAggError:
            return None, None
        finally:
            _record(secure.grid, server_round, secure.report)
        log.info("secure aggregation: %d contributors, total weight %d",
                 len(result.contributors), result.total_weight)
        return self.inner.aggregate_train(server_round, [secure.reply_from(result)])

    # -- evaluation passes through --------------------------------------------------------

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)

    # -- internals ------------------------------------------------------------------------

    def _config(self, server_round: int, train: list[Message]) -> RoundConfig:
        layouts = {ArrayLayout.of(model_of(msg)[1]) for msg in train}
        if len(layouts) != 1:
            raise ConfigError("secure aggregation needs the same model in every train message")
        participants = tuple(sorted({str(msg.metadata.dst_node_id) for msg in train}))
        if len(participants) < 3:
            raise ConfigError(f"secure aggregation needs at least 3 organizations, "
                              f"{len(participants)} were sampled in round {server_round}")
        k = effective_degree(len(participants), self.degree)
        round_id = f"{server_round}.{self._entropy(8).hex()}"
        seed = b"" if self.degree is None else hashlib.sha256(round_id.encode()).digest()
        return RoundConfig(
            round_id=round_id, participants=participants,
            threshold=self.threshold or (k + 1) // 2 + 1,
            dim=layouts.pop().size + len(self.spec.metric_keys), clip=self.clip,
            max_weight=self.max_weight, degree=self.degree, stochastic=self.stochastic,
            graph_seed=seed,
        )


def _org_name(grid: LedgerGrid) -> Callable[[str], str]:
    return lambda node: grid.nodes.org(int(node))


def _record(grid: Grid, server_round: int, report: RoundReport) -> None:
    """On a LedgerGrid: per-stage dropouts, refused replies, and only the updates in the sum."""
    if not isinstance(grid, LedgerGrid):
        return
    rlog = grid.round_log(server_round + grid.round_offset)
    for node, stage in report.dropouts.items():
        rlog.dropouts[grid.nodes.org(node)] = f"secagg.{stage.value}"
    for node, reason in report.refused.items():
        rlog.rejected[grid.nodes.org(node)] = reason
    accusations = {str(v): [str(u) for u in us] for v, us in report.accusations.items()}
    for node in report.misbehaving:  # named with its accusers (by organization)
        org = grid.nodes.org(node)
        rlog.rejected[org] = disputes.reason(str(node), accusations, _org_name(grid))
    kept = {grid.nodes.org(node) for node in report.contributors}
    for org in [o for o in rlog.aggregated if o not in kept]:
        del rlog.aggregated[org]
