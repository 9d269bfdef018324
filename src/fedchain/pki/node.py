"""A node folder: what one running process needs from its organization's PKI, and nothing more.

An organization's PKI folder holds its CA keys and every member's key. ``fedchain-server`` and
``fedchain-client`` need only the consortium's public material (``consortium.json``, the signed
definition, each organization's ``msp/``) and their own identity. Mounting the whole folder into
a long-running service would hand whoever breaks into it the power to issue the organization's
certificates; a node folder leaves the CA keys (``<org>/ca/``) and the other members behind.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fedchain.errors import IdentityNotFoundError, PKIError
from fedchain.pki.ceremony import DEFINITION_FILE
from fedchain.pki.msp import load_identity
from fedchain.pki.store import CONSORTIUM_FILE, identity_dir, load_consortium

__all__ = ["write_node_folder"]


def write_node_folder(
    pki_dir: Path, org: str, name: str, out: Path, *, password: bytes | None = None
) -> Path:
    """Write ``out`` (which must not exist): the consortium's public files and identity
    ``org``/``name``, with its keys, in the same layout, so ``--pki out`` works unchanged.
    The copy is checked (consortium pinned, identity loadable) before it is renamed into place;
    nothing is left half-written."""
    consortium = load_consortium(pki_dir)
    if org not in consortium.orgs:
        raise PKIError(f"{org} is not an organization of consortium {consortium.name!r}")
    source = identity_dir(pki_dir, org, name)
    if not (source / "msp").is_dir():
        raise IdentityNotFoundError(f"no identity {org}/{name} in {pki_dir}")
    if out.exists() or out.is_symlink():
        raise PKIError(f"{out} exists: choose a new folder for the node")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for file in (CONSORTIUM_FILE, DEFINITION_FILE):
            if (pki_dir / file).is_file():
                shutil.copy2(pki_dir / file, staging / file)
        for member in consortium.orgs:
            shutil.copytree(pki_dir / member / "msp", staging / member / "msp")
        shutil.copytree(source, identity_dir(staging, org, name))
        load_consortium(staging)
        load_identity(identity_dir(staging, org, name), password=password)
        staging.chmod(0o755)  # mkdtemp's 0700 would lock out a service running as another user
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
