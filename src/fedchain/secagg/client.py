"""The organization side of a round: a sans-IO session, one method per server message.

A driver (e.g. a Flower client mod) feeds each incoming server message to :meth:`handle` (or the
matching ``on_*`` method) and sends back what it returns. All secret randomness comes from the
32-byte ``entropy`` given to the constructor (:meth:`ClientSession.create` draws it from the OS),
so a session is reproducible in tests. Any error other than a :class:`StageError` moves the
session to FAILED and drops its secrets: a client that saw something wrong reveals nothing more.
The one exception is a neighbour's share box that does not open: that neighbour is accused in
the masked input and left out of the masking, and the round goes on (docs/secagg.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from fedchain.errors import (
    InternalError,
    ProtocolError,
    StageError,
    TooManyDropouts,
    UpdateRejected,
)
from fedchain.secagg._wire import label, lp, utf8
from fedchain.secagg.config import RoundConfig
from fedchain.secagg.keys import KeyPairs, PublicKeys, hkdf, pairwise_seed
from fedchain.secagg.messages import (
    Abort,
    KeyAdvert,
    KeysBroadcast,
    LocalUpdate,
    MaskedInput,
    ServerMessage,
    SetupRequest,
    ShareBundle,
    SharesDelivery,
    UnmaskReply,
    UnmaskRequest,
)
from fedchain.secagg.prg import Drbg, apply_masks
from fedchain.secagg.shamir import split
from fedchain.secagg.sharebox import open_shares, seal_shares
from fedchain.secagg.stages import CLIENT_TRANSITIONS, Kind, Stage, transition

__all__ = ["ClientSession"]

_R = TypeVar("_R")


class ClientSession:
    """One organization's state for one secure-aggregation round."""

    def __init__(self, org: str, *, entropy: bytes) -> None:
        if len(entropy) != 32:
            raise InternalError("entropy must be 32 bytes")
        self.org = org
        self._entropy = entropy
        self._stage = Stage.SETUP
        self._config: RoundConfig | None = None
        self._keys: KeyPairs | None = None
        self._public: PublicKeys | None = None
        self._self_seed = b""
        self._peers: dict[str, PublicKeys] = {}
        self._own_shares: tuple[bytes, bytes] = (b"", b"")
        self._held: dict[str, tuple[bytes, bytes]] = {}  # sender -> (seed share, key share)

    @classmethod
    def create(cls, org: str) -> ClientSession:
        """A session with fresh entropy from the operating system."""
        return cls(org, entropy=os.urandom(32))

    @property
    def stage(self) -> Stage:
        """The stage this session is in (see :mod:`fedchain.secagg.stages`)."""
        return self._stage

    @property
    def config(self) -> RoundConfig:
        """The round configuration received in SETUP."""
        if self._config is None:
            raise StageError("no configuration received yet")
        return self._config

    @property
    def public_keys(self) -> PublicKeys:
        """This organization's round public keys (what it publishes on the ledger)."""
        if self._public is None:
            raise StageError("keys are generated on the setup request")
        return self._public

    def handle(
        self, msg: ServerMessage, update: LocalUpdate | None = None
    ) -> KeyAdvert | ShareBundle | MaskedInput | UnmaskReply | None:
        """Dispatch ``msg`` to its ``on_*`` method (``update`` is for SharesDelivery)."""
        if isinstance(msg, SetupRequest):
            return self.on_setup(msg)
        if isinstance(msg, KeysBroadcast):
            return self.on_keys(msg)
        if isinstance(msg, SharesDelivery):
            transition(CLIENT_TRANSITIONS, self._stage, msg.kind)
            if update is None:
                raise InternalError("a SharesDelivery needs the local update")
            return self.on_shares(msg, update)
        if isinstance(msg, UnmaskRequest):
            return self.on_unmask(msg)
        self.on_abort(msg)
        return None

    def on_setup(self, msg: SetupRequest) -> KeyAdvert:
        """Accept the configuration and generate this round's key pairs."""
        return self._step(Kind.SETUP_REQUEST, lambda: self._setup(msg))

    def on_keys(self, msg: KeysBroadcast) -> ShareBundle:
        """Check the neighbours' keys; share the self-mask seed and the mask key with them."""
        return self._step(Kind.KEYS_BROADCAST, lambda: self._share(msg))

    def on_shares(self, msg: SharesDelivery, update: LocalUpdate) -> MaskedInput:
        """Store the neighbours' shares; quantize and mask the local update."""
        return self._step(Kind.SHARES_DELIVERY, lambda: self._mask(msg, update))

    def on_unmask(self, msg: UnmaskRequest) -> UnmaskReply:
        """Reveal one kind of share per organization: seed shares of survivors, key shares of
        the dropped. Asking for both kinds for the same organization is refused."""
        return self._step(Kind.UNMASK_REQUEST, lambda: self._unmask(msg))

    def on_abort(self, msg: Abort) -> None:
        """Abandon the round."""
        self._step(Kind.ABORT, lambda: None)
        self._forget()

    # -- internals -------------------------------------------------------------------------

    def _step(self, kind: Kind, work: Callable[[], _R]) -> _R:
        after = transition(CLIENT_TRANSITIONS, self._stage, kind)
        try:
            result = work()
        except Exception:
            self._stage = Stage.FAILED
            self._forget()
            raise
        self._stage = after
        return result

    def _forget(self) -> None:
        """Drop every secret (best effort: Python cannot scrub memory)."""
        self._keys, self._self_seed, self._entropy = None, b"", b""
        self._own_shares, self._held = (b"", b""), {}

    def _derive(self, name: str) -> bytes:
        return hkdf(self._entropy, b"", lp(label("client"), utf8(name)))

    def _secrets(self) -> tuple[RoundConfig, KeyPairs]:
        if self._config is None or self._keys is None:
            raise InternalError("session secrets missing")
        return self._config, self._keys

    def _setup(self, msg: SetupRequest) -> KeyAdvert:
        if self.org not in msg.config.participants:
            raise ProtocolError(f"{self.org} is not a participant of round {msg.config.round_id}")
        self._config = msg.config
        self._keys = KeyPairs(enc=self._derive("enc-key"), mask=self._derive("mask-key"))
        self._self_seed = self._derive("self-seed")
        self._public = self._keys.public()
        return KeyAdvert(self._public)

    def _share(self, msg: KeysBroadcast) -> ShareBundle:
        cfg, keys = self._secrets()
        peers = dict(msg.keys)
        strangers = sorted(set(peers) - cfg.neighbours[self.org])
        if strangers:
            raise ProtocolError(f"keys relayed for non-neighbours: {strangers}")
        own = self.public_keys
        raw = [own.enc, own.mask, *(b for k in peers.values() for b in (k.enc, k.mask))]
        if len(set(raw)) != len(raw):
            raise ProtocolError("relayed public keys repeat (a key reused or reflected)")
        if len(peers) + 1 < cfg.threshold:
            raise TooManyDropouts(
                f"{self.org}: {len(peers)} neighbours advertised keys, {cfg.threshold - 1} needed"
            )
        xs = {org: cfg.x_of(org) for org in [*peers, self.org]}
        drbg = Drbg(self._derive("shamir"))
        seed_shares = split(self._self_seed, cfg.threshold, list(xs.values()), drbg.randbytes)
        key_shares = split(keys.mask, cfg.threshold, list(xs.values()), drbg.randbytes)
        self._peers = peers
        self._own_shares = (seed_shares[xs[self.org]], key_shares[xs[self.org]])
        boxes = {
            v: seal_shares(
                keys.enc, pk.enc, cfg.digest, self.org, v, (seed_shares[xs[v]], key_shares[xs[v]])
            )
            for v, pk in sorted(peers.items())
        }
        return ShareBundle(boxes)

    def _mask(self, msg: SharesDelivery, update: LocalUpdate) -> MaskedInput:
        cfg, keys = self._secrets()
        senders = sorted(msg.ciphertexts)
        unknown = sorted(set(senders) - set(self._peers))
        if unknown:
            raise ProtocolError(f"shares relayed from organizations without keys: {unknown}")
        if len(senders) + 1 < cfg.threshold:
            raise TooManyDropouts(
                f"{self.org}: {len(senders)} neighbours shared keys, {cfg.threshold - 1} needed"
            )
        if np.size(update.vector) != cfg.dim:
            raise UpdateRejected(
                self.org, f"update has {np.size(update.vector)} values, the round expects {cfg.dim}"
            )
        accused = []
        for u in senders:
            box = msg.ciphertexts[u]
            try:
                self._held[u] = open_shares(
                    keys.enc, self._peers[u].enc, cfg.digest, u, self.org, box
                )
            except ProtocolError:
                accused.append(u)  # misbehaving: no mask with it, the server decides
        rng = np.random.default_rng(int.from_bytes(self._derive("rounding"), "big"))
        try:
            ring = cfg.quantizer.quantize(update.vector, update.weight, rng)
        except ValueError as exc:
            raise UpdateRejected(self.org, str(exc)) from exc
        masks = [(self._self_seed, 1)]
        for v in [u for u in senders if u not in accused]:
            seed = pairwise_seed(keys.mask, self._peers[v].mask, cfg.digest, self.org, v)
            masks.append((seed, 1 if self.org < v else -1))
        apply_masks(ring, masks)
        self._self_seed = b""  # only its shares are needed from now on
        return MaskedInput(ring, tuple(accused))

    def _unmask(self, msg: UnmaskRequest) -> UnmaskReply:
        survivors, dropped = set(msg.survivors), set(msg.dropped)
        both = sorted(survivors & dropped)
        if both:
            raise ProtocolError(f"refusing to reveal both kinds of share for {both}")
        if len(survivors) != len(msg.survivors) or len(dropped) != len(msg.dropped):
            raise ProtocolError("the unmask request repeats an organization")
        if self.org not in survivors:
            raise ProtocolError(f"{self.org} is alive but was not listed as a survivor")
        unknown = sorted((survivors | dropped) - set(self._held) - {self.org})
        if unknown:
            raise ProtocolError(f"no shares held for {unknown}")
        held = {**self._held, self.org: self._own_shares}
        reply = UnmaskReply(
            self_shares={u: held[u][0] for u in sorted(survivors)},
            key_shares={u: held[u][1] for u in sorted(dropped)},
        )
        self._forget()
        return reply
