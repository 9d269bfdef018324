"""``secagg_mod``: the organization's side of secure aggregation, as a Flower client mod.

Add it to any ``ClientApp`` (``ClientApp(mods=[secagg_mod])``). Messages without the
:data:`~fedchain.flower.secagg_codec.SECAGG_RECORD` pass through untouched. Stage messages
(setup, keys, unmask) are answered by the mod itself from a
:class:`~fedchain.secagg.ClientSession`; the train message that carries the neighbours' shares
is handed to the app without the secure-aggregation record, and the app's reply is replaced by
its masked vector: the plaintext update never leaves the mod.

Anchoring (G3): with a ledger (:func:`~fedchain.flower.anchor.current_anchor`), the mod
publishes its round keys at setup and checks every key the aggregator relays against what
their owners published; a mismatch raises :class:`KeyMismatch` and the organization refuses to
continue (an error reply: it is then recorded as dropped). Without a ledger it trusts the relayed
keys, unless built with ``require_anchor=True``.

Round secrets live in this process's memory, never in ``context.state`` (which Flower may
persist): the ClientApp must live for the whole round, as under ``fedchain-client`` or an
in-process grid (not Flower's deployment runtime, which starts a process per message).
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass, field

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp.typing import ClientAppCallable, Mod

from fedchain.errors import (
    FedchainError,
    KeyMismatch,
    ProtocolError,
    SecAggError,
    StageError,
)
from fedchain.flower.anchor import KeyAnchor, current_anchor
from fedchain.flower.secagg_codec import (
    SECAGG_RECORD,
    MaskingSpec,
    decode_server,
    decode_spec,
    encode,
    secagg_record,
)
from fedchain.flower.secagg_layout import ArrayLayout, local_update
from fedchain.secagg import (
    Abort,
    ClientSession,
    KeysBroadcast,
    SetupRequest,
    SharesDelivery,
    Stage,
    UnmaskRequest,
    verify_keys,
)

__all__ = ["SECAGG_ERROR_CODE", "make_secagg_mod", "secagg_mod", "secure_capable"]

log = logging.getLogger(__name__)

SECAGG_ERROR_CODE = 6  # flwr ErrorCode.MOD_FAILED_PRECONDITION: a mod refused the message


@dataclass
class _Member:
    """One organization's secure round in progress."""

    session: ClientSession
    spec: MaskingSpec
    setup_task: str | None  # the ledger task whose ``keys`` records anchor this round
    ledger_round: int | None


@dataclass
class _Members:
    """Rounds in progress by (run id, node id); thread-safe (several orgs may share a process).

    ``revealed`` remembers the ledger rounds in which a node answered an unmask request: it
    never does so twice in one ledger round, so an aggregator cannot unmask two sums over
    different subsets of the same round's updates and subtract them.
    """

    active: dict[tuple[int, int], _Member] = field(default_factory=dict)
    revealed: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, key: tuple[int, int], member: _Member) -> None:
        with self.lock:
            if member.ledger_round in self.revealed.get(key, set()):
                raise ProtocolError(f"already unmasked a sum in round {member.ledger_round}")
            self.active[key] = member

    def reveal(self, key: tuple[int, int], member: _Member) -> None:
        with self.lock:
            self.active.pop(key, None)
            if member.ledger_round is not None:
                self.revealed.setdefault(key, set()).add(member.ledger_round)

    def get(self, key: tuple[int, int]) -> _Member:
        with self.lock:
            member = self.active.get(key)
        if member is None:
            raise StageError("no secure-aggregation round in progress on this node")
        return member

    def end(self, key: tuple[int, int]) -> None:
        with self.lock:
            self.active.pop(key, None)


def make_secagg_mod(*, require_anchor: bool = False) -> Mod:
    """A secure-aggregation client mod with its own round registry.

    ``require_anchor=True`` refuses to take part unless a ledger anchor is available (use it
    under ``fedchain-client``, where an unanchored round would mean a misconfiguration).
    """
    members = _Members()

    def secagg_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        record = secagg_record(msg.content) if msg.has_content() else None
        if record is None:
            return call_next(msg, context)
        key = (context.run_id, context.node_id)
        try:
            return _dispatch(members, key, msg, record, context, call_next, require_anchor)
        except FedchainError as exc:
            members.end(key)
            log.warning("secure aggregation refused on node %d: %s: %s",
                        context.node_id, type(exc).__name__, exc)
            return Message(Error(SECAGG_ERROR_CODE, f"{type(exc).__name__}: {exc}"), reply_to=msg)
        except Exception:
            members.end(key)
            raise

    return secagg_mod


secagg_mod: Mod = make_secagg_mod()
"""The default mod: anchors keys when a ledger is available, trusts the aggregator otherwise."""


def secure_capable(app: ClientAppCallable) -> ClientAppCallable:
    """``app`` with the anchored mod outermost, as ``fedchain-client --secure`` runs it: an
    unchanged app takes part in secure aggregation when the aggregator runs it
    (``fedchain-server --secure``); every other message reaches ``app`` untouched. Not for an
    app that has a secure-aggregation mod of its own: this one would answer in its place."""
    mod = make_secagg_mod(require_anchor=True)

    def call(message: Message, context: Context) -> Message:
        return mod(message, context, app)

    return call


def _reply(msg: Message, record: ConfigRecord) -> Message:
    return Message(RecordDict({SECAGG_RECORD: record}), reply_to=msg)


def _dispatch(
    members: _Members, key: tuple[int, int], msg: Message, record: ConfigRecord,
    context: Context, call_next: ClientAppCallable, require_anchor: bool,
) -> Message:
    request = decode_server(record)
    anchor = current_anchor()
    if isinstance(request, SetupRequest):
        return _reply(msg, _setup(members, key, request, decode_spec(record), anchor,
                                  require_anchor))
    member = members.get(key)
    if isinstance(request, KeysBroadcast):
        _check_keys(member, request, anchor)
        return _reply(msg, encode(member.session.on_keys(request)))
    if isinstance(request, SharesDelivery):
        return _mask(members, key, member, msg, request, context, call_next)
    if isinstance(request, UnmaskRequest):
        members.reveal(key, member)
        return _reply(msg, encode(member.session.on_unmask(request)))
    members.end(key)  # an Abort: forget the round, reveal nothing more
    member.session.on_abort(request)
    return Message(RecordDict(), reply_to=msg)


def _setup(
    members: _Members, key: tuple[int, int], request: SetupRequest, spec: MaskingSpec,
    anchor: KeyAnchor | None, require_anchor: bool,
) -> ConfigRecord:
    """New keys for the round; published on the ledger when there is one."""
    if anchor is None and require_anchor:
        raise SecAggError("ledger-anchored keys are required and no ledger is available")
    session = ClientSession.create(str(key[1]))
    advert = session.on_setup(request)
    if anchor is None:
        member = _Member(session, spec, None, None)
    else:
        member = _Member(session, spec, anchor.task, anchor.round)
    members.start(key, member)
    if anchor is not None:
        anchor.publish_keys(advert.keys)
    return encode(advert)


def _check_keys(member: _Member, request: KeysBroadcast, anchor: KeyAnchor | None) -> None:
    """G3: every relayed neighbour key must be the one its owner published for this round."""
    if member.setup_task is None:
        return
    if anchor is None:
        raise SecAggError("keys were anchored at setup but no ledger is available now")
    trusted = {str(node): keys for node, keys in anchor.trusted_keys(member.setup_task).items()}
    try:
        verify_keys(request.keys, trusted)
    except KeyMismatch:
        log.error("the aggregator relayed keys that differ from the ledger's (task %s)",
                  member.setup_task)
        member.session.on_abort(Abort("relayed keys differ from the ledger"))
        raise


def _mask(
    members: _Members, key: tuple[int, int], member: _Member, msg: Message,
    request: SharesDelivery, context: Context, call_next: ClientAppCallable,
) -> Message:
    """Train with the app (without the secure-aggregation record), then mask its reply."""
    session = member.session
    if session.stage is not Stage.SHARE_KEYS:
        raise StageError(f"a train message in stage {session.stage.value}")
    models = list(msg.content.array_records.values())
    if len(models) != 1:
        raise ProtocolError("a secure train message must carry exactly one model ArrayRecord")
    layout = ArrayLayout.of(models[0])
    if layout.size + len(member.spec.metric_keys) != session.config.dim:
        raise ProtocolError("the model sent does not match the round's configured size")
    plain = RecordDict({name: rec for name, rec in msg.content.items() if name != SECAGG_RECORD})
    inner = copy.copy(msg)  # same metadata, so the app's reply answers ``msg``
    inner.content = plain
    reply = call_next(inner, context)
    if reply.has_error():
        members.end(key)
        return reply
    update = local_update(session.org, reply.content, layout, member.spec, session.config.clip)
    return _reply(msg, encode(session.on_shares(request, update)))
