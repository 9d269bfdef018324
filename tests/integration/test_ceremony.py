"""The key ceremony as organizations run it: each on its own folder (standing in for its own
machine), through the real CLI, exchanging only public files and fingerprints."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
from tests.integration.test_cli_pki import assert_one_line_error, run

from fedchain.pki import identity_dir, load_consortium, load_identity
from fedchain.pki.ceremony import DEFINITION_FILE
from fedchain.transport import DataPlaneClient, DataPlaneServer

ORGS = ("org1", "org2", "org3")


def ok(*args: str | Path) -> str:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def org_init(home: Path, org: str, *extra: str) -> Path:
    folder = home / f"{org}-pki"
    ok("pki", "org", "init", "--org", org, "--out", folder, *extra)
    return folder


def export(folder: Path, org: str, out: Path) -> str:
    """The bundle file, and the ``org=sha`` line the organization tells the others."""
    told = ok("pki", "org", "export", "--pki", folder, "--org", org, "--out", out)
    line = told.strip().splitlines()[-1]
    assert line.startswith(f"{org}=")
    return line


def bundles(home: Path, orgs: Iterable[str]) -> list[str | Path]:
    return [a for org in orgs for a in ("--bundle", home / f"{org}.json")]


def others(told: dict[str, str], org: str) -> str:
    return ",".join(line for member, line in told.items() if member != org)


@pytest.fixture(scope="module")
def formed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """org1 (aggregator), org2, org3 each make their keys apart and form one consortium."""
    home = tmp_path_factory.mktemp("ceremony")
    folders = {org: org_init(home, org, *(["--aggregator"] if org == "org1" else []))
               for org in ORGS}  # fmt: skip
    told = {org: export(folders[org], org, home / f"{org}.json") for org in ORGS}
    definition = home / "consortium.json"
    ok("pki", "consortium", "propose", "--name", "hospitals", "--aggregator", "org1",
       *bundles(home, ORGS), "--out", definition)  # fmt: skip
    for org in ORGS:
        ok("pki", "consortium", "sign", "--definition", definition, "--pki", folders[org],
           "--org", org, "--expect", others(told, org))  # fmt: skip
    for org in ORGS:
        ok("pki", "consortium", "join", "--definition", definition, "--pki", folders[org])
    return {"home": home, "definition": definition, **folders}


def test_each_organization_holds_only_its_own_private_keys(formed: dict[str, Path]) -> None:
    for org in ORGS:
        keys = {p.relative_to(formed[org]).parts[0] for p in formed[org].rglob("*.key")}
        keys |= {p.relative_to(formed[org]).parts[0] for p in formed[org].rglob("key.pem")}
        assert keys == {org}, (org, keys)
        for other in set(ORGS) - {org}:
            assert (formed[org] / other / "msp" / "cacerts" / "ca.pem").is_file()
            assert not (formed[org] / other / "ca").exists()
            assert not (formed[org] / other / "users").exists()


def test_every_member_loads_the_same_consortium(formed: dict[str, Path]) -> None:
    loaded = [load_consortium(formed[org]) for org in ORGS]
    assert {c.name for c in loaded} == {"hospitals"}
    assert {c.aggregator for c in loaded} == {"org1"}
    assert len({tuple(c.fingerprints().items()) for c in loaded}) == 1
    assert len({tuple(c.tls_fingerprints().items()) for c in loaded}) == 1
    texts = {(formed[org] / DEFINITION_FILE).read_text() for org in ORGS}
    assert len(texts) == 1


def test_members_from_separate_folders_talk_mtls(formed: dict[str, Path]) -> None:
    aggregator = load_identity(identity_dir(formed["org1"], "org1", "aggregator"))
    server = DataPlaneServer(aggregator, load_consortium(formed["org1"]), max_payload_bytes=1024)
    port = server.start("127.0.0.1:0")
    try:
        member = load_identity(identity_dir(formed["org3"], "org3", "client1"))
        with DataPlaneClient(f"127.0.0.1:{port}", member, load_consortium(formed["org3"]),
                             timeout=10) as client:  # fmt: skip
            assert client.ping() == "org3"
    finally:
        server.stop(0)


def test_signing_needs_every_other_fingerprint_and_refuses_a_wrong_one(
    formed: dict[str, Path], tmp_path: Path
) -> None:
    home = formed["home"]
    definition = tmp_path / "d.json"
    ok("pki", "consortium", "propose", "--name", "x", "--aggregator", "org1",
       *bundles(home, ORGS), "--out", definition)  # fmt: skip
    result = run("pki", "consortium", "sign", "--definition", definition, "--pki", formed["org2"],
                 "--org", "org2", "--expect", f"org1={'0' * 64}")  # fmt: skip
    assert_one_line_error(result, "org3", "out of band")  # org3's fingerprint was not given
    told = {org: export(formed[org], org, tmp_path / f"{org}.json") for org in ORGS}
    wrong = told["org3"][:-1] + ("0" if told["org3"][-1] != "0" else "1")
    result = run("pki", "consortium", "sign", "--definition", definition, "--pki", formed["org2"],
                 "--org", "org2", "--expect", f"{told['org1']},{wrong}")  # fmt: skip
    assert_one_line_error(result, "org3", "do not sign")
    assert json.loads(definition.read_text())["signatures"] == {}


def test_a_definition_without_every_signature_or_altered_after_signing_is_refused(
    formed: dict[str, Path], tmp_path: Path
) -> None:
    doc = json.loads(formed["definition"].read_text())
    partial = dict(doc, signatures={k: v for k, v in doc["signatures"].items() if k != "org3"})
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    copy = tmp_path / "org2-pki"
    shutil.copytree(formed["org2"], copy)
    (copy / DEFINITION_FILE).unlink()
    result = run("pki", "consortium", "join", "--definition", tmp_path / "partial.json",
                 "--pki", copy)  # fmt: skip
    assert_one_line_error(result, "lacks the signatures of org3")
    swapped = dict(doc, aggregator="org2")  # every signature kept, the content changed
    (tmp_path / "swapped.json").write_text(json.dumps(swapped))
    result = run("pki", "consortium", "join", "--definition", tmp_path / "swapped.json",
                 "--pki", copy)  # fmt: skip
    assert_one_line_error(result, "does not verify")


def test_an_organization_joins_a_running_consortium(
    formed: dict[str, Path], tmp_path: Path
) -> None:
    """The documented procedure: org4 makes its keys; a v2 definition extends v1 with its
    bundle; every member, org4 included, signs; every member joins v2; v1 cannot come back."""
    home = tmp_path
    members = {org: home / org for org in ORGS}
    for org in ORGS:
        shutil.copytree(formed[org], members[org])
    members["org4"] = org_init(home, "org4")
    told = {org: export(members[org], org, home / f"{org}.json") for org in members}
    v2 = home / "v2.json"
    ok("pki", "consortium", "propose", "--name", "hospitals", "--aggregator", "org1",
       "--previous", formed["definition"],
       *bundles(home, members), "--out", v2)  # fmt: skip
    for org, folder in members.items():
        ok("pki", "consortium", "sign", "--definition", v2, "--pki", folder, "--org", org,
           "--expect", others(told, org))  # fmt: skip
    for folder in members.values():
        ok("pki", "consortium", "join", "--definition", v2, "--pki", folder)
    assert {load_consortium(f).orgs for f in members.values()} == {("org1", "org2", "org3",
                                                                     "org4")}  # fmt: skip
    assert json.loads(v2.read_text())["version"] == 2
    stale = run("pki", "consortium", "join", "--definition", formed["definition"],
                "--pki", members["org2"])  # fmt: skip
    assert_one_line_error(stale, "does not extend it")
    assert load_consortium(members["org2"]).orgs == ("org1", "org2", "org3", "org4")


def test_a_member_cannot_be_dropped_or_its_bundle_swapped(
    formed: dict[str, Path], tmp_path: Path
) -> None:
    home = formed["home"]
    result = run("pki", "consortium", "propose", "--name", "hospitals", "--aggregator", "org1",
                 "--previous", formed["definition"], "--bundle", home / "org1.json",
                 "--bundle", home / "org2.json", "--out", tmp_path / "v2.json")  # fmt: skip
    assert_one_line_error(result, "org3", "removing a member is not supported")
    impostor = org_init(tmp_path, "org3")
    export(impostor, "org3", tmp_path / "org3.json")
    result = run("pki", "consortium", "propose", "--name", "hospitals", "--aggregator", "org1",
                 "--previous", formed["definition"], "--bundle", home / "org1.json",
                 "--bundle", home / "org2.json", "--bundle", tmp_path / "org3.json",
                 "--out", tmp_path / "v2.json")  # fmt: skip
    assert_one_line_error(result, "bundle of 'org3' differs")


def test_each_organization_issues_only_its_own_fabric_nodes(
    formed: dict[str, Path], tmp_path: Path
) -> None:
    """A peer comes from its own organization's CAs, on its machine; the orderer organization
    issues its nodes without any consortium folder."""
    crypto = tmp_path / "org2-crypto"
    listed = json.loads(ok("pki", "fabric-nodes", "--pki", formed["org2"], "--out", crypto,
                           "--no-orderer", "--json"))  # fmt: skip
    assert [(n["org"], n["role"]) for n in listed] == [("org2", "peer")]
    peer = crypto / "org2" / "peers" / "peer0"
    ca = formed["org2"] / "org2" / "msp"
    load_identity(peer).cert.verify_directly_issued_by(load_consortium(formed["org2"]).cas["org2"])
    assert (peer / "tls" / "ca.crt").read_bytes() == (ca / "tlscacerts" / "ca.pem").read_bytes()
    result = run("pki", "fabric-nodes", "--pki", formed["org2"], "--org", "org1",
                 "--out", tmp_path / "x", "--no-orderer")  # fmt: skip
    assert_one_line_error(result, "does not hold the CA key of 'org1'")
    orderer = json.loads(ok("pki", "fabric-nodes", "--out", tmp_path / "orderer-crypto",
                            "--json"))  # fmt: skip
    assert [(n["org"], n["role"]) for n in orderer] == [("ordererorg", "orderer"),
                                                        ("ordererorg", "admin")]  # fmt: skip
