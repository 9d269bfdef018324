"""Secure aggregation side by side: plain FedAvg, fedchain's SecAgg+, Flower's SecAgg+.

Run by hand (not part of the test suite)::

    python benchmarks/secagg_bench.py                      # every case (minutes)
    python benchmarks/secagg_bench.py --params 1M --orgs 10 --dropouts 0

One federated round per case, everything in this process through ``LocalGrid`` (an in-memory
Flower Grid calling the ClientApps directly; no network, no serialization on the way), so the
three systems pay the same transport cost: none. Each organization's "training" returns a
precomputed float32 update; weights (sample counts) differ per organization.

- plain: Message-API ``FedAvg``, no mod.
- fedchain: ``SecureAggregation(FedAvg)`` + ``secagg_mod`` (all-to-all, t = strict majority).
- flower: Flower's legacy ``SecAggPlusWorkflow`` + ``secaggplus_mod`` with a legacy ``FedAvg``
  and a ``NumPyClient`` (num_shares = n, reconstruction_threshold = strict majority).

Dropouts: the organizations drop after sharing keys, before sending their masked update (the
server must then rebuild their mask keys and remove their pairwise masks); in the plain run
they simply do not answer the train message.

Reported per case: client masking time (mean per organization: time inside the secure
aggregation mod on the masking stage, excluding the app), server unmasking time (from the
arrival of the last stage's replies until the aggregate is ready), total round time (wall
clock, every organization's work included, since all run in this process), bytes uploaded per
organization (all of its replies, in Flower's protobuf encoding, as fedchain's data plane sends
them), and the max absolute error of the aggregate against the exact float64 weighted mean.
Times are this process's CPU time by default (``--clock wall`` for wall-clock time).
"""

from __future__ import annotations

import argparse
import gc
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.serverapp.strategy import FedAvg

from fedchain.flower import LocalGrid, SecureAggregation, make_secagg_mod
from fedchain.flower.secagg_codec import secagg_record
from fedchain.transport.flower_codec import encode_message

SIZES = {"1M": 1_000_000, "10M": 10_000_000}
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
CLOCK = [time.process_time]  # set by --clock


@dataclass
class Case:
    """The synthetic federation of one case: updates, weights and who drops."""

    params: int
    orgs: int
    dropouts: int
    nodes: list[int] = field(default_factory=list)
    updates: dict[int, list[np.ndarray]] = field(default_factory=dict)
    weights: dict[int, int] = field(default_factory=dict)

    @classmethod
    def make(cls, params: int, orgs: int, dropouts: int, seed: int = 0) -> Case:
        case = cls(params, orgs, dropouts, nodes=list(range(101, 101 + orgs)))
        rng = np.random.default_rng(seed)
        cuts = [params // 2, params // 4, params // 8]
        sizes = [*cuts, params - sum(cuts)]
        for i, node in enumerate(case.nodes):
            case.updates[node] = [rng.normal(0, 0.5, s).astype(np.float32) for s in sizes]
            case.weights[node] = 50 + 7 * i
        return case

    @property
    def dropped(self) -> set[int]:
        return set(self.nodes[1 : 1 + self.dropouts])

    def initial(self) -> list[np.ndarray]:
        return [np.zeros_like(a) for a in self.updates[self.nodes[0]]]

    def exact_mean(self) -> list[np.ndarray]:
        live = [n for n in self.nodes if n not in self.dropped]
        total = sum(self.weights[n] for n in live)
        out = []
        for k in range(4):
            acc = np.zeros(self.updates[live[0]][k].shape, dtype=np.float64)
            for n in live:
                acc += self.weights[n] * self.updates[n][k].astype(np.float64)
            out.append(acc / total)
        return out


@dataclass
class Meter:
    """Timings and byte counts collected while one case runs."""

    mask_s: dict[int, float] = field(default_factory=dict)
    upload: dict[int, int] = field(default_factory=dict)
    grid_calls: list[tuple[float, float]] = field(default_factory=list)
    excluded_s: float = 0.0  # time spent measuring (encoding replies to count bytes)

    def timers(self, is_masking: Callable[[Message], bool]) -> tuple[Mod, Mod]:
        """An outer and an inner mod: masking time = outer - inner on the masking stage."""
        inner_s: dict[int, float] = {}

        def outer(msg: Message, ctx: Context, call_next: ClientAppCallable) -> Message:
            masking = is_masking(msg)  # before the mod runs: Flower's pops its stage key
            start = CLOCK[0]()
            reply = call_next(msg, ctx)
            if masking:
                spent = CLOCK[0]() - start - inner_s.pop(ctx.node_id, 0.0)
                self.mask_s[ctx.node_id] = spent
            return reply

        def inner(msg: Message, ctx: Context, call_next: ClientAppCallable) -> Message:
            start = CLOCK[0]()
            reply = call_next(msg, ctx)
            inner_s[ctx.node_id] = CLOCK[0]() - start
            return reply

        return outer, inner

    def observe(self, msg: Message, reply: Message) -> None:
        start = CLOCK[0]()
        node = msg.metadata.dst_node_id
        self.upload[node] = self.upload.get(node, 0) + len(encode_message(reply))
        self.excluded_s += CLOCK[0]() - start


class TimedGrid(LocalGrid):
    """A LocalGrid that records when each non-empty exchange started and ended."""

    meter: Meter

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        batch = list(messages)
        start = CLOCK[0]()
        replies = list(super().send_and_receive(batch, timeout=timeout))
        if batch:
            self.meter.grid_calls.append((start, CLOCK[0]()))
        return replies


def _grid(
    case: Case, app: ClientApp, meter: Meter, silence: Callable[[Message], bool]
) -> TimedGrid:
    grid = TimedGrid(dict.fromkeys(case.nodes, app), silence=silence, observe=meter.observe)
    grid.meter = meter
    return grid


def _message_app(case: Case, mods: list[Mod]) -> ClientApp:
    replies = {n: ArrayRecord([a for a in case.updates[n]]) for n in case.nodes}
    app = ClientApp(mods=mods)

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        metrics = MetricRecord({"num-examples": case.weights[ctx.node_id]})
        return Message(RecordDict({"arrays": replies[ctx.node_id], "metrics": metrics}),
                       reply_to=msg)

    return app


def _fedchain_masking(msg: Message) -> bool:
    record = secagg_record(msg.content) if msg.has_content() else None
    return record is not None and record["kind"] == "shares_delivery"


def run_plain(case: Case, meter: Meter) -> list[np.ndarray]:
    grid = _grid(case, _message_app(case, []), meter,
                 lambda m: m.metadata.dst_node_id in case.dropped)
    strategy = FedAvg(fraction_evaluate=0.0, min_available_nodes=case.orgs,
                      min_train_nodes=case.orgs)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(case.initial()), num_rounds=1)
    return result.arrays.to_numpy_ndarrays()


def run_fedchain(case: Case, meter: Meter) -> list[np.ndarray]:
    outer, inner = meter.timers(_fedchain_masking)
    app = _message_app(case, [outer, make_secagg_mod(), inner])
    grid = _grid(case, app, meter,
                 lambda m: m.metadata.dst_node_id in case.dropped and _fedchain_masking(m))
    inner_strategy = FedAvg(fraction_evaluate=0.0, min_available_nodes=case.orgs,
                            min_train_nodes=case.orgs)
    strategy = SecureAggregation(inner_strategy, max_weight=max(case.weights.values()))
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(case.initial()), num_rounds=1)
    return result.arrays.to_numpy_ndarrays()


def run_flower(case: Case, meter: Meter) -> list[np.ndarray]:
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.common import Config, NDArrays
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
    from flwr.server import ServerConfig
    from flwr.server.compat.grid_client_proxy import GridClientProxy
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.strategy import FedAvg as LegacyFedAvg
    from flwr.server.workflow import SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
    from flwr.server.workflow.constant import Key as WorkflowKey

    def masking(msg: Message) -> bool:
        configs = msg.content.config_records.get(RECORD_KEY_CONFIGS) if msg.has_content() else None
        return configs is not None and configs.get("stage") == "collect_masked_vectors"

    class Org(NumPyClient):
        def __init__(self, node: int) -> None:
            self.node = node

        def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Config]:
            return case.updates[self.node], case.weights[self.node], {}

    outer, inner = meter.timers(masking)
    app = ClientApp(client_fn=lambda ctx: Org(ctx.node_id).to_client(),
                    mods=[outer, secaggplus_mod, inner])
    grid = _grid(case, app, meter, lambda m: m.metadata.dst_node_id in case.dropped and masking(m))
    strategy = LegacyFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=case.orgs,
                            min_available_clients=case.orgs)
    server_context = Context(grid.run.run_id, 0, {}, RecordDict(), {})
    context = LegacyContext(server_context, config=ServerConfig(num_rounds=1), strategy=strategy)
    for node in case.nodes:
        context.client_manager.register(GridClientProxy(node, grid, grid.run.run_id))
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: 1, WorkflowKey.START_TIME: time.time()})
    context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord(case.initial())
    workflow = SecAggPlusWorkflow(num_shares=case.orgs,
                                  reconstruction_threshold=case.orgs // 2 + 1,
                                  max_weight=float(max(case.weights.values())))
    workflow(grid, context)
    return context.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()


SYSTEMS = {"plain": run_plain, "fedchain": run_fedchain, "flower": run_flower}


def measure(system: str, case: Case) -> dict[str, float]:
    """Run one round of ``system`` on ``case`` and return its figures."""
    gc.collect()
    meter = Meter()
    start = CLOCK[0]()
    arrays = SYSTEMS[system](case, meter)
    done = CLOCK[0]()
    total = done - start - meter.excluded_s
    exact = case.exact_mean()
    error = max(float(np.abs(a.astype(np.float64) - e).max())
                for a, e in zip(arrays, exact, strict=True))
    live = [n for n in case.nodes if n not in case.dropped]
    last_call_end = meter.grid_calls[-1][1] if meter.grid_calls else start
    return {
        "mask_s": float(np.mean([meter.mask_s[n] for n in live])) if meter.mask_s else 0.0,
        "unmask_s": done - last_call_end if system != "plain" else 0.0,
        "total_s": total,
        "upload_ratio": float(np.mean([meter.upload[n] for n in live])) / (4 * case.params),
        "upload_mb": float(np.mean([meter.upload[n] for n in live])) / 1e6,
        "error": error,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="1M,10M", help="comma list of 1M, 10M")
    parser.add_argument("--orgs", default="10,20", help="comma list of organization counts")
    parser.add_argument("--dropouts", default="0,2", help="comma list of dropout counts")
    parser.add_argument("--systems", default="plain,fedchain,flower", help="comma list")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: this process's CPU time (everything runs in one thread, so "
                        "it equals wall time on an idle machine and resists other load); wall")
    args = parser.parse_args(argv)
    CLOCK[0] = CLOCKS[args.clock]
    logging.getLogger("flwr").setLevel(logging.ERROR)
    logging.disable(logging.WARNING)
    print("| params × orgs | dropouts | system | mask / org (s) | server unmask (s) | "
          "total round (s) | upload / org (MB, × f32 model) | max abs error |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.params.split(","):
        for orgs in map(int, args.orgs.split(",")):
            for drops in map(int, args.dropouts.split(",")):
                case = Case.make(SIZES[size], orgs, drops)
                for system in args.systems.split(","):
                    r = measure(system, case)
                    print(f"| {size} × {orgs} | {drops} | {system} | {r['mask_s']:.3f} | "
                          f"{r['unmask_s']:.3f} | {r['total_s']:.2f} | {r['upload_mb']:.1f} "
                          f"({r['upload_ratio']:.3f}×) | {r['error']:.1e} |", flush=True)
                del case


if __name__ == "__main__":
    main()
