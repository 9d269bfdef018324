"""Organization PKI: per-org CAs, identities, Fabric-MSP-style folders, low-S signatures.

Pure functions over ``cryptography`` (ECDSA P-256, SHA-256). Each organization has a signing
CA (ledger and Fabric identities, no EKU) and a TLS CA (the mTLS data plane). See
:mod:`fedchain.pki.store` for the on-disk layout written by :func:`init_consortium`.
"""

from fedchain.pki.certs import (
    ROLES,
    Identity,
    Role,
    create_ca,
    fingerprint,
    issue_identity,
    issue_member,
    role_of,
    server_sans,
    validate_id,
)
from fedchain.pki.consortium import Consortium
from fedchain.pki.describe import describe_consortium
from fedchain.pki.msp import identity_from_cert, load_cert, load_identity, write_msp
from fedchain.pki.signing import is_low_s, sign, verify_signature
from fedchain.pki.store import (
    AGGREGATOR_NAME,
    CONSORTIUM_FILE,
    identity_dir,
    init_consortium,
    list_identities,
    load_ca,
    load_consortium,
    move_aside,
    validate_init_request,
)

__all__ = [
    "AGGREGATOR_NAME",
    "CONSORTIUM_FILE",
    "ROLES",
    "Consortium",
    "Identity",
    "Role",
    "create_ca",
    "describe_consortium",
    "fingerprint",
    "identity_dir",
    "identity_from_cert",
    "init_consortium",
    "is_low_s",
    "issue_identity",
    "issue_member",
    "list_identities",
    "load_ca",
    "load_cert",
    "load_consortium",
    "load_identity",
    "move_aside",
    "role_of",
    "server_sans",
    "sign",
    "validate_id",
    "validate_init_request",
    "verify_signature",
    "write_msp",
]
