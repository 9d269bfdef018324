"""The aggregator side of a round: a sans-IO session that collects, relays and unmasks.

The driver calls :meth:`ServerSession.start`, then for each stage feeds every reply it gets to
:meth:`~ServerSession.receive` (with the sender's *authenticated* org id) and, when the stage's
deadline passes or everyone answered, calls :meth:`~ServerSession.advance` to get the next
stage's messages; in UNMASK it calls :meth:`~ServerSession.finish` for the aggregate.

Masked vectors are kept (masked) until the collecting stage closes, then added into one ring
accumulator, and masks are removed from that sum only: the session never holds an unmasked
individual vector. A malformed reply raises :class:`ProtocolError` and is ignored (its sender
then counts as dropped); too few survivors in any needed neighbourhood raise
:class:`TooManyDropouts` before anything is reconstructed. Organizations accusing neighbours
of unopenable share boxes are settled by :func:`fedchain.secagg.disputes.settle`: those left
out count as dropped before masking (only their mask keys may be rebuilt, and only if a
survivor masked with them) and are listed in :attr:`ServerSession.misbehaving`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from fedchain.errors import ProtocolError, TooManyDropouts
from fedchain.secagg._unmask import recover_sum
from fedchain.secagg.config import RoundConfig
from fedchain.secagg.disputes import settle
from fedchain.secagg.keys import PublicKeys, check_public_key
from fedchain.secagg.messages import (
    Abort,
    ClientMessage,
    KeyAdvert,
    KeysBroadcast,
    MaskedInput,
    ServerMessage,
    SetupRequest,
    ShareBundle,
    SharesDelivery,
    UnmaskReply,
    UnmaskRequest,
)
from fedchain.secagg.shamir import PRIME, SHARE_BYTES
from fedchain.secagg.sharebox import CIPHERTEXT_BYTES
from fedchain.secagg.stages import SERVER_TRANSITIONS, Kind, Stage, transition

__all__ = ["AggregateResult", "ServerSession", "ShareKind"]

_R = TypeVar("_R")


class ShareKind(enum.Enum):
    """The two secrets an organization shares: at most one may ever be reconstructed."""

    SELF_SEED = "self_seed"
    MASK_KEY = "mask_key"


@dataclass(frozen=True, eq=False)
class AggregateResult:
    """The unmasked weighted sum; divide by ``total_weight`` for the weighted mean."""

    weighted_sum: npt.NDArray[np.float64]
    total_weight: int
    contributors: tuple[str, ...]
    dropouts: Mapping[Stage, tuple[str, ...]]
    error_bound: float  # per coordinate, on weighted_sum
    misbehaving: Mapping[str, str] = field(default_factory=dict)  # org -> why left out

    def mean(self) -> npt.NDArray[np.float64]:
        """The weighted mean ``weighted_sum / total_weight`` (cast to float32 as needed)."""
        return self.weighted_sum / self.total_weight


class ServerSession:
    """The aggregator's state for one secure-aggregation round."""

    def __init__(self, config: RoundConfig) -> None:
        self.config = config
        self._stage = Stage.SETUP
        self._keys: dict[str, PublicKeys] = {}  # U1: who advertised
        self._sent_keys: dict[str, frozenset[str]] = {}
        self._bundles: dict[str, Mapping[str, bytes]] = {}  # U2: who shared
        self._acc: npt.NDArray[np.uint32] | None = None
        self._masked: set[str] = set()  # who sent a masked vector
        self._inputs: dict[str, npt.NDArray[np.uint32]] = {}  # their vectors until the close
        self._accused: dict[str, frozenset[str]] = {}  # accuser -> unopenable senders
        self._excluded: dict[str, str] = {}  # left out over disputes -> reason
        self._survivors: set[str] = set()  # U3: whose masked vector is in the sum
        self._requests: dict[str, UnmaskRequest] = {}
        self._shares: dict[ShareKind, dict[str, dict[int, bytes]]] = {k: {} for k in ShareKind}
        self._responders: set[str] = set()  # U4: who answered the unmask request
        self._dropouts: dict[Stage, tuple[str, ...]] = {}

    @property
    def stage(self) -> Stage:
        """The stage this session is in."""
        return self._stage

    @property
    def public_keys(self) -> Mapping[str, PublicKeys]:
        """The advertised round keys (to publish or compare with the ledger)."""
        return dict(self._keys)

    @property
    def dropouts(self) -> Mapping[Stage, tuple[str, ...]]:
        """Organizations that did not reply, by the stage whose reply they missed."""
        return dict(self._dropouts)

    @property
    def misbehaving(self) -> Mapping[str, str]:
        """Organizations left out over share-box disputes, with the reason (for the ledger)."""
        return dict(self._excluded)

    @property
    def accusations(self) -> Mapping[str, frozenset[str]]:
        """Accuser -> the neighbours whose share box did not open for it."""
        return {v: u for v, u in self._accused.items() if u}

    def share_kinds(self) -> Mapping[str, frozenset[ShareKind]]:
        """Which kinds of share this session has received about each organization."""
        out: dict[str, set[ShareKind]] = {}
        for kind, by_org in self._shares.items():
            for org, shares in by_org.items():
                if shares:
                    out.setdefault(org, set()).add(kind)
        return {org: frozenset(kinds) for org, kinds in out.items()}

    def pending(self) -> frozenset[str]:
        """Who may still reply in the current stage (a driver can advance once it is empty)."""
        replied = {
            Stage.ADVERTISE_KEYS: set(self._keys),
            Stage.SHARE_KEYS: set(self._bundles),
            Stage.COLLECT_MASKED: self._masked,
            Stage.UNMASK: self._responders,
        }.get(self._stage, set())
        return frozenset(self._live() - replied)

    def start(self) -> dict[str, SetupRequest]:
        """Open the round: the configuration for every participant."""
        self._stage = transition(SERVER_TRANSITIONS, self._stage, Kind.START)
        return {org: SetupRequest(self.config) for org in self.config.participants}

    def abort(self, reason: str) -> dict[str, Abort]:
        """Abandon the round; the Abort messages go to everyone still taking part."""
        after = transition(SERVER_TRANSITIONS, self._stage, Kind.ABORT)
        live = self._live()
        self._stage, self._acc = after, None
        return {org: Abort(reason) for org in sorted(live)}

    def receive(self, sender: str, msg: ClientMessage) -> None:
        """Take one reply from the authenticated organization ``sender``."""
        transition(SERVER_TRANSITIONS, self._stage, msg.kind)
        if isinstance(msg, KeyAdvert):
            self._on_advert(sender, msg)
        elif isinstance(msg, ShareBundle):
            self._on_bundle(sender, msg)
        elif isinstance(msg, MaskedInput):
            self._on_masked(sender, msg)
        else:
            self._on_unmask_reply(sender, msg)

    def advance(self) -> dict[str, ServerMessage]:
        """Close the current collecting stage; the next stage's message for each survivor."""
        after = transition(SERVER_TRANSITIONS, self._stage, Kind.ADVANCE)
        closers: dict[Stage, Callable[[], dict[str, ServerMessage]]] = {
            Stage.ADVERTISE_KEYS: self._close_advertise,
            Stage.SHARE_KEYS: self._close_share,
            Stage.COLLECT_MASKED: self._close_masked,
        }
        return self._guarded(after, closers[self._stage])

    def finish(self) -> AggregateResult:
        """Close UNMASK: reconstruct the needed secrets and remove every mask from the sum."""
        after = transition(SERVER_TRANSITIONS, self._stage, Kind.FINISH)
        return self._guarded(after, self._unmask)

    # -- receiving -------------------------------------------------------------------------

    def _expect(self, sender: str, allowed: Collection[str], seen: Collection[str]) -> None:
        if sender not in allowed:
            raise ProtocolError(f"{sender} is not expected in stage {self._stage.value}")
        if sender in seen:
            raise ProtocolError(f"{sender} already replied in stage {self._stage.value}")

    def _on_advert(self, sender: str, msg: KeyAdvert) -> None:
        self._expect(sender, self.config.participants, self._keys)
        taken = {b for k in self._keys.values() for b in (k.enc, k.mask)}
        if {msg.keys.enc, msg.keys.mask} & taken or msg.keys.enc == msg.keys.mask:
            raise ProtocolError(f"{sender} advertised a public key already in use")
        check_public_key(msg.keys.enc)
        check_public_key(msg.keys.mask)
        self._keys[sender] = msg.keys

    def _on_bundle(self, sender: str, msg: ShareBundle) -> None:
        self._expect(sender, self._keys, self._bundles)
        if set(msg.ciphertexts) != self._sent_keys[sender]:
            raise ProtocolError(f"{sender} did not share with exactly its live neighbours")
        if any(len(box) != CIPHERTEXT_BYTES for box in msg.ciphertexts.values()):
            raise ProtocolError(f"{sender} sent a ciphertext of the wrong size")
        self._bundles[sender] = dict(msg.ciphertexts)

    def _on_masked(self, sender: str, msg: MaskedInput) -> None:
        self._expect(sender, self._bundles, self._masked)
        vec = msg.masked
        if self._acc is None or vec.dtype != np.uint32 or vec.shape != self._acc.shape:
            raise ProtocolError(f"{sender} sent a masked vector of the wrong type or shape")
        accused = frozenset(msg.accused)
        if len(accused) != len(msg.accused) or not accused <= self._delivered_to(sender):
            raise ProtocolError(f"{sender} accused organizations that sent it no share box")
        self._inputs[sender] = vec
        self._accused[sender] = accused
        self._masked.add(sender)

    def _on_unmask_reply(self, sender: str, msg: UnmaskReply) -> None:
        self._expect(sender, self._requests, self._responders)
        req = self._requests[sender]
        parts = {ShareKind.SELF_SEED: msg.self_shares, ShareKind.MASK_KEY: msg.key_shares}
        wanted = {ShareKind.SELF_SEED: req.survivors, ShareKind.MASK_KEY: req.dropped}
        for kind, shares in parts.items():
            if set(shares) != set(wanted[kind]):
                raise ProtocolError(f"{sender} did not answer exactly what was asked")
            if any(
                len(s) != SHARE_BYTES or int.from_bytes(s, "big") >= PRIME for s in shares.values()
            ):
                raise ProtocolError(f"{sender} sent a malformed share")
        x = self.config.x_of(sender)
        for kind, shares in parts.items():
            for org, share in shares.items():
                self._shares[kind].setdefault(org, {})[x] = share
        self._responders.add(sender)

    # -- closing stages --------------------------------------------------------------------

    def _guarded(self, after: Stage, work: Callable[[], _R]) -> _R:
        try:
            result = work()
        except Exception:
            self._stage = Stage.FAILED
            self._acc = None
            raise
        self._stage = after
        return result

    def _live(self) -> set[str]:
        """Who is still taking part: those expected to reply in the current stage."""
        return {
            Stage.ADVERTISE_KEYS: set(self.config.participants),
            Stage.SHARE_KEYS: set(self._keys),
            Stage.COLLECT_MASKED: set(self._bundles),
            Stage.UNMASK: self._survivors,
        }.get(self._stage, set())

    def _delivered_to(self, org: str) -> frozenset[str]:
        """Who sent ``org`` a share box (its neighbours that shared)."""
        return frozenset(self.config.neighbours[org] & set(self._bundles))

    def _accusers(self, org: str) -> set[str]:
        return {v for v, accused in self._accused.items() if org in accused}

    def _needed(self) -> set[str]:
        """Whose secret must be rebuilt: every survivor's self-mask seed, and the mask key of
        each organization out of the sum that some survivor masked with."""
        u3 = self._survivors
        out = set(u3)
        for d in set(self._bundles) - u3:
            if any(d not in self._accused.get(v, ()) for v in self.config.neighbours[d] & u3):
                out.add(d)
        return out

    def _close(self, stage: Stage, before: set[str], alive: set[str], needed: set[str]) -> None:
        """Record who dropped in ``stage``; fail unless every ``needed`` org keeps t holders
        (an accuser of ``u`` holds no share of ``u``)."""
        cfg = self.config
        self._dropouts[stage] = tuple(sorted(before - alive))
        short = {u: len((cfg.holders(u) - self._accusers(u)) & alive) for u in sorted(needed)}
        short = {u: have for u, have in short.items() if have < cfg.threshold}
        if len(alive) < cfg.threshold or short:
            detail = ", ".join(f"{u} has {h}" for u, h in short.items()) or "too few overall"
            raise TooManyDropouts(
                f"stage {stage.value}: {len(alive)} of {len(before)} organizations left, "
                f"threshold {cfg.threshold} per neighbourhood ({detail}); nothing was revealed"
            )

    def _close_advertise(self) -> dict[str, ServerMessage]:
        u1 = set(self._keys)
        self._close(Stage.ADVERTISE_KEYS, set(self.config.participants), u1, set())
        out: dict[str, ServerMessage] = {}
        for u in sorted(u1):
            live = self.config.neighbours[u] & u1
            self._sent_keys[u] = live
            out[u] = KeysBroadcast({v: self._keys[v] for v in sorted(live)})
        return out

    def _close_share(self) -> dict[str, ServerMessage]:
        u2 = set(self._bundles)
        self._close(Stage.SHARE_KEYS, set(self._keys), u2, u2)
        self._acc = np.zeros(self.config.dim + 1, dtype=np.uint32)
        return {
            v: SharesDelivery(
                {u: self._bundles[u][v] for u in sorted(self.config.neighbours[v] & u2)}
            )
            for v in sorted(u2)
        }

    def _close_masked(self) -> dict[str, ServerMessage]:
        u2 = set(self._bundles)
        self._excluded = settle(self._accused)
        u3 = self._survivors = set(self._masked) - set(self._excluded)
        inputs, self._inputs = self._inputs, {}
        if self._acc is not None:
            for v in sorted(u3):
                np.add(self._acc, inputs[v], out=self._acc)
        needed = self._needed()
        self._close(Stage.COLLECT_MASKED, u2, u3, needed)
        for v in sorted(u3):
            nbrs = self.config.neighbours[v]
            self._requests[v] = UnmaskRequest(
                survivors=tuple(sorted((nbrs & u3) | {v})),
                dropped=tuple(sorted((nbrs & (needed - u3)) - self._accused[v])),
            )
        return dict(self._requests)

    def _unmask(self) -> AggregateResult:
        u3, needed = self._survivors, self._needed()
        self._close(Stage.UNMASK, u3, set(self._responders), needed)
        if self._acc is None:
            raise ProtocolError("no masked vectors were collected")
        acc, self._acc = self._acc, None
        recover_sum(
            self.config,
            acc,
            self._keys,
            survivors=u3,
            dropped=needed - u3,
            seed_shares=self._shares[ShareKind.SELF_SEED],
            key_shares=self._shares[ShareKind.MASK_KEY],
            omitted={(v, u) for v in u3 for u in self._accused[v]},
        )
        weighted_sum, total_weight = self.config.quantizer.dequantize(acc)
        return AggregateResult(
            weighted_sum=weighted_sum,
            total_weight=total_weight,
            contributors=tuple(sorted(u3)),
            dropouts=dict(self._dropouts),
            error_bound=self.config.quantizer.error_bound(),
            misbehaving=dict(self._excluded),
        )
