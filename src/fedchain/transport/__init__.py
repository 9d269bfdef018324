"""The mutually authenticated gRPC data plane: models move here, only hashes go on the ledger.

Organizations dial out to the aggregator's :class:`DataPlaneServer` with a
:class:`DataPlaneClient`; both sides authenticate with their consortium X.509 identities (mTLS),
payloads are content-addressed by SHA-256 and streamed in chunks. Flower messages travel in
Flower's own serialization (:mod:`fedchain.transport.flower_codec`, imported separately so the
transport does not pull in ``flwr``).
"""

from fedchain.transport.client import DEFAULT_TIMEOUT, DataPlaneClient
from fedchain.transport.framing import CHUNK_SIZE, SERVICE
from fedchain.transport.limits import CallLimits
from fedchain.transport.server import DataPlaneServer

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_TIMEOUT",
    "SERVICE",
    "CallLimits",
    "DataPlaneClient",
    "DataPlaneServer",
]
