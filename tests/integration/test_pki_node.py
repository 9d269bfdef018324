"""`fedchain pki org node`: a folder with one identity and the consortium's public files, which a
server or client uses as its --pki, without the organization's CA keys or other members' keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.runtime_support import WAIT, child_env

from fedchain.pki import AGGREGATOR_NAME, identity_dir, load_consortium, load_identity
from fedchain.transport import DataPlaneClient, DataPlaneServer


def _node(pki: Path, org: str, name: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedchain.cli.main", "pki", "org", "node", "--pki", str(pki),
         "--org", org, "--identity", name, "--out", str(out)],
        env=child_env(), capture_output=True, text=True, timeout=WAIT,
    )  # fmt: skip


def test_a_node_folder_holds_one_identity_and_no_ca_key(
    consortium_dir: Path, tmp_path: Path
) -> None:
    agg, member = tmp_path / "agg", tmp_path / "org2-node"
    assert _node(consortium_dir, "org1", AGGREGATOR_NAME, agg).returncode == 0
    assert _node(consortium_dir, "org2", "client1", member).returncode == 0
    keys = sorted(str(p.relative_to(agg)) for p in agg.rglob("*") if p.suffix == ".key"
                  or p.parent.name == "keystore")  # fmt: skip
    assert keys == [
        "org1/users/aggregator/msp/keystore/key.pem",
        "org1/users/aggregator/tls/server.key",
    ]
    assert not any(agg.glob("*/ca"))
    assert (consortium_dir / "org1" / "ca").is_dir()
    assert [p.name for p in (agg / "org1" / "users").iterdir()] == ["aggregator"]
    assert load_consortium(agg) == load_consortium(consortium_dir)
    # the two node folders are all a server and a client need to meet over mTLS
    consortium = load_consortium(member)
    server = DataPlaneServer(
        load_identity(identity_dir(agg, "org1", AGGREGATOR_NAME)), load_consortium(agg),
        max_payload_bytes=1 << 20,
    )  # fmt: skip
    address = f"127.0.0.1:{server.start('127.0.0.1:0')}"
    try:
        with DataPlaneClient(
            address, load_identity(identity_dir(member, "org2", "client1")), consortium
        ) as client:
            assert client.ping() == "org2"
    finally:
        server.stop(0)


@pytest.mark.parametrize(
    ("org", "name", "message"),
    [
        ("org1", "nobody", "error: no identity org1/nobody in "),
        ("org9", "client1", "error: org9 is not an organization of consortium 'testnet'"),
    ],
)
def test_a_missing_identity_is_one_line_and_nothing_written(
    consortium_dir: Path, tmp_path: Path, org: str, name: str, message: str
) -> None:
    out = tmp_path / "node"
    done = _node(consortium_dir, org, name, out)
    assert done.returncode == 1
    assert done.stderr.strip().startswith(message), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no folder, no staging left behind


def test_an_existing_folder_is_never_overwritten(consortium_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "node"
    out.mkdir()
    (out / "keep").write_text("mine")
    done = _node(consortium_dir, "org2", "client1", out)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {out} exists: choose a new folder for the node"
    assert [p.name for p in out.iterdir()] == ["keep"]
