"""Secure-aggregation messages <-> Flower ``ConfigRecord``: the wire format of the Flower seam.

Every stage message travels as one ``ConfigRecord`` named :data:`SECAGG_RECORD` inside an
ordinary Flower message; its ``kind`` field is the :class:`~fedchain.secagg.Kind` value. Maps
(org -> key, org -> ciphertext) become two parallel lists, because a ``ConfigRecord`` holds only
scalars and flat lists. The masked vector is one ``bytes`` value (``MaskedInput.to_bytes()``,
4 bytes per coordinate): a reply carrying it has no ``ArrayRecord``, so nothing mistakes it for
a plaintext model. Anything malformed from the other side raises :class:`ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from flwr.app import ConfigRecord, RecordDict

from fedchain.errors import ConfigError, ProtocolError
from fedchain.secagg import (
    Abort,
    ClientMessage,
    KeyAdvert,
    KeysBroadcast,
    Kind,
    MaskedInput,
    PublicKeys,
    RoundConfig,
    ServerMessage,
    SetupRequest,
    ShareBundle,
    SharesDelivery,
    UnmaskReply,
    UnmaskRequest,
)

__all__ = [
    "SECAGG_RECORD",
    "MaskingSpec",
    "decode_client",
    "decode_server",
    "decode_spec",
    "encode",
    "secagg_record",
]

SECAGG_RECORD = "fedchain.secagg"
_T = TypeVar("_T")


@dataclass(frozen=True)
class MaskingSpec:
    """What an organization masks besides the model: which metric holds its weight, and which
    reply metrics are summed securely (each clipped to ``±metric_bound``)."""

    weight_key: str = "num-examples"
    metric_keys: tuple[str, ...] = ()
    metric_bound: float = 1e3

    def __post_init__(self) -> None:
        if not self.metric_bound > 0:
            raise ConfigError("metric_bound must be positive")
        if self.weight_key in self.metric_keys or len(set(self.metric_keys)) != len(
            self.metric_keys
        ):
            raise ConfigError("metric keys must be distinct and differ from the weight key")


def secagg_record(content: RecordDict) -> ConfigRecord | None:
    """The secure-aggregation record of a message's content, or None for a plain message."""
    return content.config_records.get(SECAGG_RECORD)


def encode(msg: ServerMessage | ClientMessage, spec: MaskingSpec | None = None) -> ConfigRecord:
    """The ``ConfigRecord`` for ``msg`` (``spec`` only goes with a SetupRequest)."""
    out: dict[str, Any] = {"kind": msg.kind.value}
    if isinstance(msg, SetupRequest):
        cfg, spec = msg.config, spec or MaskingSpec()
        out.update(round_id=cfg.round_id, participants=list(cfg.participants),
                   threshold=cfg.threshold, dim=cfg.dim, clip=float(cfg.clip),
                   max_weight=cfg.max_weight, degree=-1 if cfg.degree is None else cfg.degree,
                   stochastic=cfg.stochastic, graph_seed=cfg.graph_seed,
                   weight_key=spec.weight_key, metric_keys=list(spec.metric_keys),
                   metric_bound=float(spec.metric_bound))
    elif isinstance(msg, KeysBroadcast):
        out.update(orgs=sorted(msg.keys), keys=[msg.keys[o].to_bytes() for o in sorted(msg.keys)])
    elif isinstance(msg, SharesDelivery | ShareBundle):
        names = sorted(msg.ciphertexts)
        out.update(orgs=names, ciphertexts=[msg.ciphertexts[o] for o in names])
    elif isinstance(msg, UnmaskRequest):
        out.update(survivors=list(msg.survivors), dropped=list(msg.dropped))
    elif isinstance(msg, Abort):
        out.update(reason=msg.reason)
    elif isinstance(msg, KeyAdvert):
        out.update(keys=msg.keys.to_bytes())
    elif isinstance(msg, MaskedInput):
        out.update(masked=msg.to_bytes(), accused=list(msg.accused))
    else:
        self_orgs, key_orgs = sorted(msg.self_shares), sorted(msg.key_shares)
        out.update(self_orgs=self_orgs, self_shares=[msg.self_shares[o] for o in self_orgs],
                   key_orgs=key_orgs, key_shares=[msg.key_shares[o] for o in key_orgs])
    return ConfigRecord(out)


def _get(record: ConfigRecord, key: str, kind: type[_T]) -> _T:
    value = record.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"secure-aggregation field {key!r} is missing or not {kind.__name__}")
    return value


def _strings(record: ConfigRecord, key: str) -> list[str]:
    values = _get(record, key, list)
    if not all(isinstance(v, str) for v in values):
        raise ProtocolError(f"secure-aggregation field {key!r} must be a list of strings")
    return values


def _blobs(record: ConfigRecord, names: str, blobs: str) -> dict[str, bytes]:
    orgs, values = _strings(record, names), _get(record, blobs, list)
    if len(orgs) != len(values) or len(set(orgs)) != len(orgs):
        raise ProtocolError(f"secure-aggregation fields {names!r}/{blobs!r} do not pair up")
    if not all(isinstance(v, bytes) for v in values):
        raise ProtocolError(f"secure-aggregation field {blobs!r} must be a list of bytes")
    return dict(zip(orgs, values, strict=True))


def _kind(record: ConfigRecord) -> Kind:
    try:
        return Kind(_get(record, "kind", str))
    except ValueError as exc:
        raise ProtocolError(f"unknown secure-aggregation message kind: {exc}") from exc


def decode_spec(record: ConfigRecord) -> MaskingSpec:
    """The masking spec that travels with a SetupRequest."""
    try:
        return MaskingSpec(_get(record, "weight_key", str),
                           tuple(_strings(record, "metric_keys")),
                           _get(record, "metric_bound", float))
    except ConfigError as exc:
        raise ProtocolError(f"bad masking spec: {exc}") from exc


def _config(record: ConfigRecord) -> RoundConfig:
    degree = _get(record, "degree", int)
    try:
        return RoundConfig(
            round_id=_get(record, "round_id", str),
            participants=tuple(_strings(record, "participants")),
            threshold=_get(record, "threshold", int), dim=_get(record, "dim", int),
            clip=_get(record, "clip", float), max_weight=_get(record, "max_weight", int),
            degree=None if degree < 0 else degree, stochastic=_get(record, "stochastic", bool),
            graph_seed=_get(record, "graph_seed", bytes),
        )
    except ConfigError as exc:
        raise ProtocolError(f"unacceptable round configuration: {exc}") from exc


def decode_server(record: ConfigRecord) -> ServerMessage:
    """An aggregator -> organization message (what a client mod receives)."""
    kind = _kind(record)
    if kind is Kind.SETUP_REQUEST:
        return SetupRequest(_config(record))
    if kind is Kind.KEYS_BROADCAST:
        keys = _blobs(record, "orgs", "keys")
        return KeysBroadcast({o: PublicKeys.from_bytes(k) for o, k in keys.items()})
    if kind is Kind.SHARES_DELIVERY:
        return SharesDelivery(_blobs(record, "orgs", "ciphertexts"))
    if kind is Kind.UNMASK_REQUEST:
        return UnmaskRequest(tuple(_strings(record, "survivors")),
                             tuple(_strings(record, "dropped")))
    if kind is Kind.ABORT:
        return Abort(_get(record, "reason", str))
    raise ProtocolError(f"{kind.value} is not a message an organization receives")


def decode_client(record: ConfigRecord) -> ClientMessage:
    """An organization -> aggregator message (what the strategy wrapper receives)."""
    kind = _kind(record)
    if kind is Kind.KEY_ADVERT:
        return KeyAdvert(PublicKeys.from_bytes(_get(record, "keys", bytes)))
    if kind is Kind.SHARE_BUNDLE:
        return ShareBundle(_blobs(record, "orgs", "ciphertexts"))
    if kind is Kind.MASKED_INPUT:
        accused = tuple(_strings(record, "accused")) if "accused" in record else ()
        return MaskedInput.from_bytes(_get(record, "masked", bytes), accused)
    if kind is Kind.UNMASK_REPLY:
        return UnmaskReply(_blobs(record, "self_orgs", "self_shares"),
                           _blobs(record, "key_orgs", "key_shares"))
    raise ProtocolError(f"{kind.value} is not a message the aggregator receives")
