"""An organization's side of the key ceremony, on its own folder (see :mod:`.ceremony`).

:func:`sign_definition` signs a definition as the organization's admin once every other
member's bundle matches the fingerprint that member gave out of band; :func:`join_definition`
accepts a fully signed definition into the folder: the other members' public MSPs,
``consortium.json`` and the definition itself. Neither reads any key but the organization's own.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from fedchain.errors import PKIError
from fedchain.pki.ceremony import DEFINITION_FILE, Definition, parse_definition, read_bundle
from fedchain.pki.consortium import Consortium
from fedchain.pki.msp import load_cert, load_identity, write_msp

__all__ = [
    "CONSORTIUM_JSON",
    "consortium_json",
    "held_orgs",
    "join_definition",
    "read_definition",
    "sign_definition",
    "write_atomically",
]

CONSORTIUM_JSON = "consortium.json"


def held_orgs(pki_dir: Path) -> list[str]:
    """Organizations whose signing CA key this folder holds (its own; all of them in a demo)."""
    if not pki_dir.is_dir():
        return []
    return sorted(p.parent.parent.name for p in pki_dir.glob("*/ca/ca.key"))


def sign_definition(
    defn: Definition,
    pki_dir: Path,
    org: str,
    expected: Mapping[str, str],
    *,
    password: bytes | None = None,
) -> Definition:
    """``defn`` with ``org``'s admin signature, after checking every bundle.

    ``org``'s own bundle must be the one in ``pki_dir``; every other member's must have the
    fingerprint in ``expected`` (what that member told ``org`` out of band).
    """
    own = read_bundle(pki_dir, org)
    if defn.bundle(org).doc() != own.doc():
        raise PKIError(f"the definition's bundle of {org!r} is not the one in {pki_dir}")
    others = [b for b in defn.orgs if b.org != org]
    unchecked = sorted(b.org for b in others if b.org not in expected)
    if unchecked:
        raise PKIError(
            f"no expected fingerprint for {', '.join(unchecked)}: ask each organization for its "
            "bundle fingerprint out of band and pass it with --expect ORG=SHA256"
        )
    for b in others:
        if expected[b.org].strip().lower() != b.fingerprint:
            raise PKIError(
                f"the bundle of {b.org!r} has fingerprint {b.fingerprint}, not the "
                f"{expected[b.org]} {b.org!r} gave: do not sign"
            )
    defn._check_shape()
    admin = load_identity(pki_dir / org / "users" / "admin", password=password)
    return defn.with_signature(org, admin.sign(defn.payload()))


def read_definition(pki_dir: Path) -> Definition | None:
    """The definition ``pki_dir`` joined, verified; None if it holds none."""
    path = pki_dir / DEFINITION_FILE
    if not path.is_file():
        return None
    defn = parse_definition(path.read_bytes(), str(path))
    defn.verify()
    return defn


def join_definition(defn: Definition, pki_dir: Path) -> Consortium:
    """Accept a fully signed ``defn`` into ``pki_dir`` (which holds at least one member's keys).

    Writes the members' public MSPs it lacks (an existing one must hold the same CAs), then
    ``consortium.json`` and the definition, each replaced atomically. A folder that joined
    before accepts only the same definition or the one that extends it (version + 1, naming
    it as previous).
    """
    defn.verify()
    mine = [org for org in held_orgs(pki_dir) if org in {b.org for b in defn.orgs}]
    if not mine:
        raise PKIError(f"{pki_dir} holds the keys of no member of consortium {defn.name!r}")
    for org in mine:
        if read_bundle(pki_dir, org).doc() != defn.bundle(org).doc():
            raise PKIError(f"the definition's bundle of {org!r} is not the one in {pki_dir}")
    current = read_definition(pki_dir)
    extends = current is None or (
        defn.previous_sha256 == current.sha256 and defn.version == current.version + 1
    )
    if current is not None and current.sha256 != defn.sha256 and not extends:
        raise PKIError(
                f"{pki_dir} holds {current.name!r} v{current.version}; this definition "
                f"(v{defn.version}) does not extend it"
            )
    for b in defn.orgs:
        _install_msp(pki_dir, b.org, defn)
    cons = defn.consortium()
    write_atomically(pki_dir / CONSORTIUM_JSON, consortium_json(cons))
    write_atomically(pki_dir / DEFINITION_FILE, defn.to_json())
    return cons


def _install_msp(pki_dir: Path, org: str, defn: Definition) -> None:
    bundle = defn.bundle(org)
    msp = pki_dir / org / "msp"
    if (msp / "config.yaml").is_file():
        held = (load_cert(msp / "cacerts" / "ca.pem"), load_cert(msp / "tlscacerts" / "ca.pem"))
        if held != (bundle.ca, bundle.tlsca):
            raise PKIError(f"{msp} holds other CAs than the definition gives {org!r}")
        return
    if msp.exists():
        raise PKIError(f"{msp} is incomplete; remove it and join again")
    write_msp(msp, bundle.ca, tls_ca_cert=bundle.tlsca)


def consortium_json(cons: Consortium) -> bytes:
    """``consortium.json``: name, aggregator, and each member's two CA fingerprints."""
    doc = {
        "name": cons.name,
        "aggregator": cons.aggregator,
        "orgs": [
            {"id": org, "ca_sha256": sha, "tlsca_sha256": cons.tls_fingerprints()[org]}
            for org, sha in cons.fingerprints().items()
        ],
    }
    return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename (readers see the old or the new file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
