"""The fedchain exception tree.

Every error fedchain raises on purpose derives from :class:`FedchainError`. Foreign exceptions
(sqlite3, grpc, cryptography, pydantic) are translated at the edge that calls the foreign
library, with ``raise X(...) from exc``, so callers only ever catch fedchain types.

    FedchainError
    ├── ConfigError                  invalid fedchain.toml / environment overrides
    ├── MissingExtra                 an optional dependency is not installed (has .extra)
    ├── PKIError                     certificates and keys
    │   ├── KeyPasswordError         a wrong or missing private-key password
    │   ├── IdentityNotFoundError    an MSP folder without the expected files
    │   └── CertificateError         a certificate that does not chain to a consortium CA
    │       └── SignatureError       a signature that is malformed, high-S or does not verify
    ├── LedgerError                  anything the ledger refuses or cannot do
    │   ├── RecordError              a malformed, oversized or wrongly typed record
    │   ├── RuleViolation            a well-formed record that breaks a write rule (has .rule)
    │   ├── LedgerUnavailable        the backend cannot be reached now (retryable; has .retried)
    │   │   ├── WriteUnconfirmed     committed, but not yet placed in ledger order (has .tx_id)
    │   │   └── GatewayUnreachable   the Fabric gateway did not answer the first call (.endpoint)
    │   ├── LedgerNotFound           no ledger at the configured location
    │   ├── LedgerCorrupted          audit found a bad entry (has .seq)
    │   └── GatewayError             a Fabric Gateway call failed (has .tx_id, .code, .details)
    │       ├── EndorseError         the proposal was not endorsed
    │       ├── SubmitError          the endorsed transaction was not accepted for ordering
    │       ├── CommitStatusError    the commit status could not be obtained
    │       └── CommitError          the transaction was ordered but failed validation
    ├── TransportError               the mTLS gRPC data plane
    │   ├── PeerAuthError            the peer's identity is wrong for what it asked
    │   ├── DataPlaneBusy            the server refused a call over its limits (retry later)
    │   ├── PayloadError             a payload that is too large or missing
    │   │   └── PayloadTooLarge      a payload over a size limit (refused before transfer)
    │   └── HashMismatch             bytes that do not match their ledger hash
    ├── ProtocolError                a remote party broke the protocol (our peer's fault)
    │   └── UpdateRejected           a reply refused before aggregation (has .reason)
    ├── SecAggError                  secure aggregation cannot complete
    │   ├── StageError               a message that is not allowed in the current stage
    │   ├── KeyMismatch              relayed public keys differ from the ledger's
    │   └── TooManyDropouts          fewer survivors than the threshold
    └── InternalError                a bug in fedchain itself (local protocol error)

Local errors (our bug, ``InternalError``) are kept apart from remote ones (``ProtocolError``:
a misbehaving peer), as h11 does.
"""

from __future__ import annotations

__all__ = [
    "AttachRefused",
    "CertificateError",
    "CommitError",
    "CommitStatusError",
    "ConfigError",
    "DataPlaneBusy",
    "EndorseError",
    "FedchainError",
    "GatewayError",
    "GatewayUnreachable",
    "HashMismatch",
    "IdentityNotFoundError",
    "InternalError",
    "KeyMismatch",
    "KeyPasswordError",
    "LedgerCorrupted",
    "LedgerError",
    "LedgerNotFound",
    "LedgerUnavailable",
    "MissingExtra",
    "PKIError",
    "PayloadError",
    "PayloadTooLarge",
    "PeerAuthError",
    "ProtocolError",
    "RecordError",
    "RuleViolation",
    "SecAggError",
    "SignatureError",
    "StageError",
    "SubmitError",
    "TooManyDropouts",
    "TransportError",
    "UpdateRejected",
]


class FedchainError(Exception):
    """Base of every error fedchain raises on purpose."""


class ConfigError(FedchainError):
    """The configuration file or environment overrides are invalid."""


class MissingExtra(FedchainError):
    """An optional dependency is not installed; the message says which pip extra brings it.

    ``extra`` names the extra (e.g. ``"fabric"``): ``pip install 'fedchain[<extra>]'``.
    """

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class PKIError(FedchainError):
    """A certificate or key cannot be created, read or trusted."""


class KeyPasswordError(PKIError):
    """A private key is encrypted and the password is wrong or missing."""


class IdentityNotFoundError(PKIError):
    """An MSP-style identity folder lacks the certificate or key it should hold."""


class CertificateError(PKIError):
    """A certificate does not chain to the expected consortium CA, or is out of validity."""


class SignatureError(CertificateError):
    """A signature is malformed, not low-S (Fabric refuses high-S), or does not verify.

    A subclass of :class:`CertificateError` because both mean "this party cannot be trusted
    for this data"; callers that care which check failed can catch this one alone.
    """


class LedgerError(FedchainError):
    """The ledger refused a write or could not answer."""


class RecordError(LedgerError):
    """A record is malformed, oversized or wrongly typed (refused before any rule runs)."""


class RuleViolation(LedgerError):
    """A well-formed record breaks a ledger write rule.

    ``rule`` is the stable rule identifier of ``docs/ledger.md`` (e.g. ``publish.duplicate``),
    shared with the chaincode and the vector files.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.detail = message


class LedgerUnavailable(LedgerError):
    """The ledger backend cannot be reached right now; the operation may be retried.

    ``retried`` is true when the backend has already retried with its own backoff (the Fabric
    Gateway client) and gave up, or decided that retrying is pointless: callers should not
    multiply the attempts by retrying again.
    """

    def __init__(self, message: str, *, retried: bool = False) -> None:
        super().__init__(message)
        self.retried = retried


class WriteUnconfirmed(LedgerUnavailable):
    """A write that committed, but that this handle could not yet place in ledger order.

    On Fabric: the transaction is valid in a block, but the chaincode event stream has not
    delivered it within the sync timeout. The write stands, so it must not be published again
    (that would be refused as a duplicate); callers carry on as if it had returned, and will
    see it once the stream catches up. ``tx_id`` names the transaction.
    """

    def __init__(self, message: str, *, tx_id: str) -> None:
        super().__init__(message, retried=True)
        self.tx_id = tx_id


class GatewayUnreachable(LedgerUnavailable):
    """The Fabric gateway did not answer the first call of a new handle (nothing listening, a
    wrong endpoint, a TLS handshake that fails).

    Not retried (``retried`` is true): a gateway that was never reached is a setup problem to
    report at once, while an outage after a successful first call gets the backend's backoff.
    ``endpoint`` is where it was sought, ``reason`` what gRPC said, ``hint`` what to do.
    """

    def __init__(self, endpoint: str, reason: str, *, hint: str) -> None:
        super().__init__(
            f"the Fabric gateway at {endpoint} is unreachable ({reason}); {hint}", retried=True
        )
        self.endpoint = endpoint
        self.reason = reason
        self.hint = hint


class LedgerNotFound(LedgerError):
    """There is no ledger at the configured location (or it is not a fedchain ledger)."""


class LedgerCorrupted(LedgerError):
    """Audit found an entry whose hash, signature, order or write rule does not check out."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"entry {seq}: {message}")
        self.seq = seq
        self.detail = message


class GatewayError(LedgerError):
    """A Hyperledger Fabric Gateway call failed.

    ``tx_id`` is the transaction id (empty when there is none yet), ``code`` the gRPC status
    name (e.g. ``"ABORTED"``; ``None`` when the failure is not a gRPC status), and ``details``
    the endorsing peers' or orderers' own messages from the ``grpc-status-details-bin`` trailer,
    as ``(address, msp_id, message)`` tuples. Raised as is when an evaluation fails.
    """

    def __init__(
        self,
        message: str,
        *,
        tx_id: str = "",
        code: str | None = None,
        details: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        lines = [message] + [f"  {addr or '?'} ({msp or '?'}): {msg}" for addr, msp, msg in details]
        super().__init__("\n".join(lines))
        self.tx_id = tx_id
        self.code = code
        self.details = details
        self.detail = message


class EndorseError(GatewayError):
    """The gateway could not collect endorsements (the chaincode refused, or peers failed)."""


class SubmitError(GatewayError):
    """The endorsed transaction was not accepted by the ordering service."""


class CommitStatusError(GatewayError):
    """The gateway could not tell whether the transaction committed (it may still commit)."""


class CommitError(GatewayError):
    """The transaction was ordered but invalidated at commit; ``validation_code`` says why."""

    def __init__(self, message: str, *, tx_id: str, validation_code: str) -> None:
        super().__init__(message, tx_id=tx_id)
        self.validation_code = validation_code


class TransportError(FedchainError):
    """The mTLS gRPC data plane failed."""


class PeerAuthError(TransportError):
    """The authenticated peer is not allowed to do what it asked (e.g. claims another org)."""


class AttachRefused(TransportError):
    """The aggregator and this organization refuse each other's certificate or identity:
    a configuration error that retrying cannot mend (unlike an aggregator not yet up)."""


class DataPlaneBusy(TransportError):
    """The server refused a call over its limits (per organization or overall); retry later."""


class PayloadError(TransportError):
    """A payload is too large, missing, or was not offered to this peer."""


class PayloadTooLarge(PayloadError):
    """A payload exceeds a size limit: the sender's, the receiver's or the announced size."""


class HashMismatch(TransportError):
    """Received bytes do not hash to the value the ledger records."""


class ProtocolError(FedchainError):
    """A remote party broke the protocol (its fault, not ours)."""


class UpdateRejected(ProtocolError):
    """A reply was refused before aggregation; ``reason`` is what goes on the ledger."""

    def __init__(self, org: str, reason: str) -> None:
        super().__init__(f"update from {org} rejected: {reason}")
        self.org = org
        self.reason = reason


class SecAggError(FedchainError):
    """Secure aggregation cannot complete."""


class StageError(SecAggError):
    """A secure-aggregation message arrived in a stage that does not accept it."""


class KeyMismatch(SecAggError):
    """Public keys relayed by the aggregator differ from those their owners put on the ledger."""


class TooManyDropouts(SecAggError):
    """Too few organizations survived to reconstruct the masks; nothing is revealed."""


class InternalError(FedchainError):
    """A bug in fedchain itself: an invariant of our own code did not hold."""
