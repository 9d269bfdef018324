"""Shared fixtures: one real consortium (made by fedchain.pki) for the whole test session.

``consortium_dir`` holds orgs org1, org2, org3 (aggregator org1), each with ``admin``,
``client1`` and ``client2``; org1 also has ``aggregator`` (role server, SANs localhost and
127.0.0.1). Keys are unencrypted. The folder is shared: tests must not modify it (copy it with
``shutil.copytree`` first if they need to).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain.pki import Consortium, init_consortium, load_consortium

CONSORTIUM_ORGS = ("org1", "org2", "org3")


@pytest.fixture(scope="session")
def consortium_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A consortium folder written by ``init_consortium`` (read-only for tests)."""
    out = tmp_path_factory.mktemp("pki") / "consortium"
    init_consortium(out, consortium="testnet", orgs=CONSORTIUM_ORGS, aggregator="org1", clients=2)
    return out


@pytest.fixture(scope="session")
def consortium(consortium_dir: Path) -> Consortium:
    """The consortium of ``consortium_dir``, loaded from disk."""
    return load_consortium(consortium_dir)
