"""Fabric node identities (peers, the orderer) issued by a consortium's own CAs.

A Fabric network needs, besides the organizations' members, a signing identity and a TLS server
certificate for every node. :func:`init_fabric_nodes` issues them from the CAs of an existing
fedchain PKI (``fedchain pki init``): the signing certificate from the organization's signing
CA (no EKU, as Fabric's MSP requires), the TLS certificate from its TLS CA. It adds an orderer
organization with its own two CAs (it orders transactions but is not a fedchain organization,
so it is not in ``consortium.json``). Layout under ``out``::

    <org>/peers/<peer>/msp/               role peer (signcerts, keystore, cacerts, ...)
    <org>/peers/<peer>/tls/               ca.crt, server.crt, server.key
    <orderer-org>/ca/                     the orderer organization's CAs (ca.*, tlsca.*)
    <orderer-org>/msp/                    its public MSP (configtx.yaml MSPDir)
    <orderer-org>/orderers/<orderer>/msp/ role orderer, and tls/ as for peers
    <orderer-org>/users/admin/msp/        role admin
    <orderer-org>/users/admin/tls/        ca.crt, client.crt, client.key (osnadmin mutual TLS)

TLS server certificates carry the SANs ``localhost``, ``127.0.0.1``, ``<node>.<org>`` (the host
name the compose demo gives the node) and any extra ``hosts``. Keys are unencrypted PKCS8: Fabric
nodes read them unattended. Running again keeps complete nodes whose certificates still chain to
today's CAs and carry the requested SANs; anything else is refused, never overwritten.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from fedchain.errors import IdentityNotFoundError, PKIError
from fedchain.pki.certs import CA, Role, create_ca, server_sans, validate_id
from fedchain.pki.membership import held_orgs
from fedchain.pki.msp import load_cert, tls_stem, write_msp
from fedchain.pki.store import load_ca, load_consortium, write_ca, write_member

__all__ = [
    "DEFAULT_ORDERER",
    "DEFAULT_ORDERER_ORG",
    "DEFAULT_PEER",
    "FabricNode",
    "init_fabric_nodes",
    "node_hosts",
]

DEFAULT_ORDERER_ORG = "ordererorg"
DEFAULT_PEER = "peer0"
DEFAULT_ORDERER = "orderer0"

_MSP_FILES = (
    "cacerts/ca.pem",
    "tlscacerts/ca.pem",
    "config.yaml",
    "signcerts/cert.pem",
    "keystore/key.pem",
)


@dataclass(frozen=True)
class FabricNode:
    """One node (or the orderer admin) and where its material is; ``created`` is False if kept."""

    org: str
    name: str
    role: str
    path: Path
    hosts: tuple[str, ...]
    created: bool


def node_hosts(org: str, name: str, extra: Sequence[str] = ()) -> list[str]:
    """Host names a node's TLS certificate must carry besides localhost and 127.0.0.1."""
    return [f"{name}.{org}".lower(), *extra]


def _check_existing(
    folder: Path, sign_ca: x509.Certificate, tls_ca: x509.Certificate, hosts: Sequence[str],
    *, role: str,
) -> None:  # fmt: skip
    """Refuse a node folder that is partial, from another CA, or lacks a requested SAN."""
    stem = tls_stem(role)
    msp_files = [folder / "msp" / f for f in _MSP_FILES]
    tls_files = [folder / "tls" / f for f in ("ca.crt", f"{stem}.crt", f"{stem}.key")]
    missing = [str(p.relative_to(folder)) for p in msp_files + tls_files if not p.is_file()]
    if missing:
        raise PKIError(
            f"{folder} is incomplete (missing {', '.join(missing)}); remove it and run again"
        )
    tls_cert = load_cert(tls_files[1])
    pairs = ((msp_files[3], load_cert(msp_files[3]), sign_ca), (tls_files[1], tls_cert, tls_ca))
    for path, cert, ca_cert in pairs:
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise PKIError(
                f"{path} was not issued by the current CA of its organization; "
                f"remove {folder} and run again"
            ) from exc
    if stem == "server":
        sans = tls_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        lacking = [str(name.value) for name in server_sans(hosts) if name not in sans]
        if lacking:
            raise PKIError(
                f"the TLS certificate in {folder} lacks {', '.join(lacking)}; "
                f"remove {folder} and run again"
            )


def _issue_into(
    folder: Path,
    cas: tuple[CA, CA],
    *,
    org: str,
    name: str,
    role: Role,
    hosts: Sequence[str],
    now: datetime,
) -> bool:
    """Create ``folder`` (msp/ + tls/) atomically; False if a valid one is already there."""
    sign_ca, tls_ca = cas
    if folder.exists():
        _check_existing(folder, sign_ca[0], tls_ca[0], hosts, role=role)
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
    try:
        write_member(
            staging, sign_ca, tls_ca, org=org, name=name, role=role, hosts=hosts, now=now,
            password=None,
        )  # fmt: skip
        staging.chmod(0o755)
        staging.rename(folder)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PKIError(f"cannot create {folder}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


def _orderer_cas(out: Path, org: str, now: datetime) -> tuple[CA, CA]:
    """Load the orderer organization's CAs from ``out``; create them and its MSP if absent."""
    if (out / org / "ca").exists():
        try:
            cas = (load_ca(out, org), load_ca(out, org, kind="tlsca"))
        except IdentityNotFoundError as exc:
            raise PKIError(f"{out / org / 'ca'} is incomplete; remove {out / org}") from exc
    else:
        cas = (create_ca(org, now=now), create_ca(org, now=now, kind="tlsca"))
        write_ca(out / org / "ca", "ca", cas[0], None)
        write_ca(out / org / "ca", "tlsca", cas[1], None)
    if not (out / org / "msp" / "config.yaml").is_file():
        if (out / org / "msp").exists():
            raise PKIError(f"{out / org / 'msp'} is incomplete; remove {out / org}")
        write_msp(out / org / "msp", cas[0][0], tls_ca_cert=cas[1][0])
    return cas


def _issue_node(
    out: Path, cas: tuple[CA, CA], *, org: str, name: str, role: Role, hosts: Sequence[str],
    now: datetime,
) -> FabricNode:  # fmt: skip
    """Issue (or keep) one node under ``out/<org>/<peers|orderers|users>/<name>``."""
    group = {"peer": "peers", "orderer": "orderers"}.get(role, "users")
    names = tuple(node_hosts(org, name, hosts)) if role != "admin" else ()
    folder = out / org / group / name
    created = _issue_into(folder, cas, org=org, name=name, role=role, hosts=names, now=now)
    return FabricNode(org=org, name=name, role=role, path=folder, hosts=names, created=created)


def init_fabric_nodes(
    pki_dir: Path | None,
    out: Path,
    *,
    orgs: Sequence[str] | None = None,
    orderer_org: str = DEFAULT_ORDERER_ORG,
    with_orderer: bool = True,
    peer: str = DEFAULT_PEER,
    orderer: str = DEFAULT_ORDERER,
    hosts: Sequence[str] = (),
    password: bytes | None = None,
    now: datetime | None = None,
) -> list[FabricNode]:
    """Issue peers of consortium organizations, and the orderer organization's nodes.

    Each peer comes from its own organization's CAs (``<org>/ca/`` in ``pki_dir``, decrypted
    with ``password``): ``orgs`` names them, by default every member whose CA key ``pki_dir``
    holds (on an organization's machine, its own). ``with_orderer`` adds the orderer
    organization (its CAs made in ``out`` if absent), its orderer and its admin; ``pki_dir`` may
    then be None (the orderer organization's own machine). Idempotent: complete, current nodes
    are kept (see the module docstring). Returns the peers (in organization order), then the
    orderer and the admin.
    """
    validate_id(orderer_org, "orderer organization id")
    validate_id(peer, "peer name")
    validate_id(orderer, "orderer name")
    server_sans(hosts)  # validate the extra host names before anything is written
    when = now or datetime.now(UTC)
    members = _peer_orgs(pki_dir, orgs, orderer_org, with_orderer)
    nodes = [
        _issue_node(out, (load_ca(pki_dir, org, password=password),
                          load_ca(pki_dir, org, password=password, kind="tlsca")),
                    org=org, name=peer, role="peer", hosts=hosts, now=when)
        for org in members if pki_dir is not None
    ]  # fmt: skip
    if with_orderer:
        ord_ca = _orderer_cas(out, orderer_org, when)
        nodes.append(_issue_node(out, ord_ca, org=orderer_org, name=orderer, role="orderer",
                                 hosts=hosts, now=when))  # fmt: skip
        nodes.append(_issue_node(out, ord_ca, org=orderer_org, name="admin", role="admin",
                                 hosts=(), now=when))  # fmt: skip
    return nodes


def _peer_orgs(
    pki_dir: Path | None, orgs: Sequence[str] | None, orderer_org: str, with_orderer: bool
) -> list[str]:
    """The organizations to issue peers for; each must be a member whose CA key is here."""
    if pki_dir is None:
        if orgs:
            raise PKIError("peers need their organization's folder (--pki)")
        if not with_orderer:
            raise PKIError("nothing to issue: no organization folder and no orderer")
        return []
    cons = load_consortium(pki_dir)
    if orderer_org.casefold() in {o.casefold() for o in cons.orgs}:
        raise PKIError(
            f"orderer organization {orderer_org!r} is also a consortium organization; "
            "choose another --orderer-org"
        )
    held = set(held_orgs(pki_dir))
    wanted = list(orgs) if orgs is not None else [o for o in cons.orgs if o in held]
    for org in wanted:
        if org not in cons.orgs:
            raise PKIError(f"{org!r} is not a member of consortium {cons.name!r}")
        if org not in held:
            raise PKIError(
                f"{pki_dir} does not hold the CA key of {org!r}: a peer is issued by its own "
                "organization, on its machine, with its folder"
            )
    if not wanted and not with_orderer:
        raise PKIError(f"{pki_dir} holds no member's CA key: nothing to issue")
    return sorted(wanted)
