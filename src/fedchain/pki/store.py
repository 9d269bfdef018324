"""A consortium on disk: creating it once, loading it, finding identities in it.

Layout (Fabric-MSP style; the same identities can sign Fabric transactions)::

    OUT/consortium.json    {"aggregator", "name", "orgs": [{"id", "ca_sha256", "tlsca_sha256"}]}
    OUT/consortium-definition.json   the signed definition it was joined from (ceremony.py)
    OUT/<org>/msp/                the org's public MSP (cacerts, tlscacerts, config.yaml)
    OUT/<org>/ca/ca.pem, ca.key   the org's signing CA, its key (0600) kept out of msp/
    OUT/<org>/ca/tlsca.pem, tlsca.key   the org's TLS CA
    OUT/<org>/users/<name>/msp/   one identity's signing certificate (signcerts, keystore, ...)
    OUT/<org>/users/<name>/tls/   its TLS certificate (ca.crt, client.crt/key or server.crt/key)

:func:`init_consortium` builds everything in a hidden staging folder next to OUT and renames it
into place, so a failure never leaves half a consortium, and it never overwrites keys: an
occupied OUT is refused, or with ``force`` moved aside to ``OUT.replaced-<time>`` (never deleted,
because losing a CA key orphans every identity it issued).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fedchain.errors import CertificateError, IdentityNotFoundError, KeyPasswordError, PKIError
from fedchain.pki.ceremony import OrgBundle, propose, read_bundle
from fedchain.pki.certs import (
    CA,
    CAKind,
    Identity,
    Role,
    create_ca,
    fingerprint,
    issue_member,
    server_sans,
    validate_id,
)
from fedchain.pki.consortium import Consortium
from fedchain.pki.membership import (
    CONSORTIUM_JSON,
    join_definition,
    read_definition,
    sign_definition,
)
from fedchain.pki.msp import (
    REISSUE_HINT,
    identity_from_cert,
    load_cert,
    load_key,
    serialize_key,
    write_file,
    write_msp,
    write_tls,
)

__all__ = [
    "AGGREGATOR_NAME",
    "CONSORTIUM_FILE",
    "MAX_CLIENTS",
    "identity_dir",
    "init_consortium",
    "init_org",
    "list_identities",
    "load_ca",
    "load_consortium",
    "move_aside",
    "validate_init_request",
    "write_ca",
    "write_member",
]

T = TypeVar("T")
CONSORTIUM_FILE = CONSORTIUM_JSON
#: Identity name of the aggregator's server identity, under the aggregator org.
AGGREGATOR_NAME = "aggregator"
MAX_CLIENTS = 1000


def identity_dir(pki_dir: Path, org: str, name: str) -> Path:
    """Folder of identity ``name`` of ``org`` (holding its ``msp/``)."""
    return pki_dir / validate_id(org) / "users" / validate_id(name, "identity name")


def _occupied(out: Path) -> bool:
    return out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir())))


def move_aside(out: Path, *, now: datetime | None = None) -> Path | None:
    """Rename an occupied ``out`` to ``out.replaced-<UTC time>``; return where it went."""
    if not _occupied(out):
        return None
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out.with_name(f"{out.name}.replaced-{stamp}")
    n = 1
    while target.exists() or target.is_symlink():
        target = out.with_name(f"{out.name}.replaced-{stamp}-{n}")
        n += 1
    try:
        out.rename(target)
    except OSError as exc:
        raise PKIError(f"cannot move {out} aside to {target}: {exc.strerror}") from exc
    return target


def validate_init_request(
    *,
    consortium: str,
    orgs: Sequence[str],
    aggregator: str,
    hosts: Sequence[str] = (),
    clients: int = 1,
    password: bytes | None = None,
) -> list[str]:
    """Check :func:`init_consortium` arguments without touching the disk; return the orgs.

    Run before anything is created or moved, so bad input never disturbs an existing folder.
    """
    validate_id(consortium, "consortium name")
    org_list = [validate_id(o) for o in orgs]
    if not org_list:
        raise PKIError("at least one organization is required")
    folded = [o.casefold() for o in org_list]
    if len(set(folded)) != len(folded):
        raise PKIError(f"duplicate organization ids in {', '.join(org_list)}")
    if aggregator not in org_list:
        raise PKIError(f"aggregator {aggregator!r} must be one of the organizations")
    if not 0 <= clients <= MAX_CLIENTS:
        raise PKIError(f"clients must be between 0 and {MAX_CLIENTS}, got {clients}")
    server_sans(hosts)
    if password is not None and not password:
        raise KeyPasswordError("an empty key password is not allowed")
    return org_list


def _members(org: str, aggregator: str, clients: int) -> list[tuple[str, Role]]:
    members: list[tuple[str, Role]] = [("admin", "admin")]
    members += [(f"client{i}", "client") for i in range(1, clients + 1)]
    if org == aggregator:
        members.append((AGGREGATOR_NAME, "server"))
    return members


def write_ca(ca_dir: Path, kind: CAKind, ca: CA, password: bytes | None) -> None:
    """``<kind>.pem`` and ``<kind>.key`` (0600) in ``ca_dir`` (created 0700)."""
    ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_file(ca_dir / f"{kind}.key", serialize_key(ca[1], password), private=True)
    write_file(ca_dir / f"{kind}.pem", ca[0].public_bytes(serialization.Encoding.PEM))


def write_member(
    folder: Path,
    sign_ca: CA,
    tls_ca: CA,
    *,
    org: str,
    name: str,
    role: Role,
    hosts: Sequence[str],
    now: datetime,
    password: bytes | None,
) -> None:
    """Issue one member's signing and TLS certificates into ``folder/msp`` and ``folder/tls``."""
    member = issue_member(sign_ca, tls_ca, org=org, name=name, role=role, hosts=hosts, now=now)
    write_msp(folder / "msp", sign_ca[0], member, tls_ca_cert=tls_ca[0], password=password)
    write_tls(folder / "tls", tls_ca[0], member.tls_identity(), password=password)


def _write_org(
    root: Path,
    org: str,
    *,
    aggregator: str,
    hosts: Sequence[str],
    clients: int,
    password: bytes | None,
    now: datetime,
) -> tuple[x509.Certificate, x509.Certificate]:
    """Create one org's CAs, public MSP and members under ``root``; return its two CAs."""
    sign_ca = create_ca(org, now=now)
    tls_ca = create_ca(org, now=now, kind="tlsca")
    (root / org / "ca").mkdir(parents=True, mode=0o700)
    write_ca(root / org / "ca", "ca", sign_ca, password)
    write_ca(root / org / "ca", "tlsca", tls_ca, password)
    write_msp(root / org / "msp", sign_ca[0], tls_ca_cert=tls_ca[0])
    for name, role in _members(org, aggregator, clients):
        write_member(
            identity_dir(root, org, name), sign_ca, tls_ca, org=org, name=name, role=role,
            hosts=hosts if role == "server" else (), now=now, password=password,
        )  # fmt: skip
    return sign_ca[0], tls_ca[0]


def _staged(out: Path, when: datetime, force: bool, build: Callable[[Path], T]) -> T:
    """Run ``build`` on a hidden staging folder beside ``out``, then rename it to ``out``.

    An occupied ``out`` raises PKIError, or with ``force`` is moved aside first; a failure
    leaves nothing behind.
    """
    if _occupied(out):
        if not force:
            raise PKIError(
                f"{out} is not empty; refusing to overwrite it (use --force to move it aside)"
            )
        move_aside(out, now=when)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=parent))
    except OSError as exc:
        raise PKIError(f"cannot create {out}: {exc.strerror}") from exc
    try:
        result = build(staging)
        staging.chmod(0o755)
        staging.rename(out)  # atomic; replaces only an empty folder, fails if OUT filled up
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PKIError(f"cannot create {out}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def init_org(
    out: Path,
    org: str,
    *,
    clients: int = 1,
    aggregator: bool = False,
    hosts: Sequence[str] = (),
    password: bytes | None = None,
    now: datetime | None = None,
    force: bool = False,
) -> OrgBundle:
    """One organization's side of the key ceremony: its CAs and members in ``out/<org>/``.

    Members are ``admin`` and ``client1..clientN``, plus ``aggregator`` (role ``server``, SANs
    localhost, 127.0.0.1 and ``hosts``) if this organization aggregates. Returns the public
    bundle to hand to the others (:mod:`fedchain.pki.ceremony`).
    """
    validate_init_request(consortium="x", orgs=[org], aggregator=org, hosts=hosts,
                          clients=clients, password=password)  # fmt: skip
    when = now or datetime.now(UTC)

    def build(root: Path) -> OrgBundle:
        _write_org(root, org, aggregator=org if aggregator else "", hosts=hosts,
                   clients=clients, password=password, now=when)  # fmt: skip
        return read_bundle(root, org)

    return _staged(out, when, force, build)


def init_consortium(
    out: Path,
    *,
    consortium: str,
    orgs: Sequence[str],
    aggregator: str,
    hosts: Sequence[str] = (),
    clients: int = 1,
    password: bytes | None = None,
    now: datetime | None = None,
    force: bool = False,
) -> Consortium:
    """Run the whole key ceremony for every organization into one folder (a demo's shortcut).

    The same per-organization steps as on separate machines: each org's CAs and members
    (:func:`init_org`'s), its bundle, one definition signed by every admin, joined. The folder
    then holds every organization's private keys: fine for one machine, never for a real
    consortium. An occupied ``out`` raises PKIError, or with ``force`` is moved aside first.
    """
    org_list = validate_init_request(
        consortium=consortium, orgs=orgs, aggregator=aggregator, hosts=hosts, clients=clients,
        password=password,
    )  # fmt: skip
    when = now or datetime.now(UTC)

    def build(root: Path) -> Consortium:
        for org in org_list:
            _write_org(root, org, aggregator=aggregator, hosts=hosts, clients=clients,
                       password=password, now=when)  # fmt: skip
        bundles = [read_bundle(root, org) for org in org_list]
        defn = propose(consortium, aggregator, bundles)
        told = {b.org: b.fingerprint for b in bundles}
        for org in org_list:
            defn = sign_definition(defn, root, org, told, password=password)
        return join_definition(defn, root)

    return _staged(out, when, force, build)


def _parse_consortium_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise IdentityNotFoundError(f"no consortium at {path.parent} (missing {path})") from exc
    except (OSError, ValueError) as exc:
        raise PKIError(f"cannot read {path}: {exc}") from exc
    ok = (
        isinstance(doc, dict)
        and isinstance(doc.get("name"), str)
        and isinstance(doc.get("aggregator"), str)
        and isinstance(doc.get("orgs"), list)
        and all(
            isinstance(o, dict)
            and isinstance(o.get("id"), str)
            and isinstance(o.get("ca_sha256"), str)
            for o in doc["orgs"]
        )
    )
    if not ok:
        raise PKIError(f"{path} is not a fedchain consortium file")
    if not all(isinstance(o.get("tlsca_sha256"), str) for o in doc["orgs"]):
        raise PKIError(f"{path.parent} names no TLS CA per organization: {REISSUE_HINT}")
    return dict(doc)


def _pinned_ca(pki_dir: Path, org: str, folder: str, sha256: str) -> x509.Certificate:
    """``<org>/msp/<folder>/ca.pem``, which must match the SHA-256 in consortium.json."""
    ca = load_cert(pki_dir / org / "msp" / folder / "ca.pem")
    if fingerprint(ca) != sha256.lower():
        raise CertificateError(
            f"{folder}/ca.pem of {org!r} in {pki_dir} does not match the SHA-256 recorded "
            f"in {CONSORTIUM_FILE}"
        )
    return ca


def load_consortium(pki_dir: Path) -> Consortium:
    """Load ``consortium.json`` and each org's CAs from ``<org>/msp/{cacerts,tlscacerts}``.

    Each CA must match the SHA-256 recorded in ``consortium.json`` (CertificateError if not),
    so a swapped CA file is caught. Only public files are read.
    """
    doc = _parse_consortium_json(pki_dir / CONSORTIUM_FILE)
    cas: dict[str, x509.Certificate] = {}
    tls_cas: dict[str, x509.Certificate] = {}
    for entry in doc["orgs"]:
        org = validate_id(entry["id"])
        cas[org] = _pinned_ca(pki_dir, org, "cacerts", entry["ca_sha256"])
        tls_cas[org] = _pinned_ca(pki_dir, org, "tlscacerts", entry["tlsca_sha256"])
    cons = Consortium(name=doc["name"], aggregator=doc["aggregator"], cas=cas, tls_cas=tls_cas)
    defn = read_definition(pki_dir)
    if defn is not None:
        signed = defn.consortium()
        same = (signed.name, signed.aggregator) == (cons.name, cons.aggregator) and (
            signed.fingerprints(), signed.tls_fingerprints()
        ) == (cons.fingerprints(), cons.tls_fingerprints())
        if not same:
            raise CertificateError(
                f"{CONSORTIUM_FILE} in {pki_dir} does not match the signed consortium definition"
            )
    return cons


def load_ca(pki_dir: Path, org: str, *, password: bytes | None = None, kind: CAKind = "ca") -> CA:
    """The signing (``ca``) or TLS (``tlsca``) CA certificate and key of ``org``."""
    ca_dir = pki_dir / validate_id(org) / "ca"
    cert = load_cert(ca_dir / f"{kind}.pem")
    key = load_key(ca_dir / f"{kind}.key", password)
    if key.public_key() != cert.public_key():
        raise PKIError(f"the key in {ca_dir / f'{kind}.key'} does not match its certificate")
    return cert, key


def list_identities(pki_dir: Path, consortium: Consortium | None = None) -> list[Identity]:
    """Public view (no keys) of every identity under ``<org>/users/``, sorted by org, name."""
    cons = consortium or load_consortium(pki_dir)
    found: list[Identity] = []
    for org in cons.orgs:
        users = pki_dir / org / "users"
        if not users.is_dir():
            continue  # another org's public MSP only
        for member in sorted(users.iterdir()):
            cert_path = member / "msp" / "signcerts" / "cert.pem"
            if cert_path.is_file():
                found.append(identity_from_cert(load_cert(cert_path)))
    return found
