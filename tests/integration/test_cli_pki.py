"""``fedchain pki init|show`` run as a user runs them: the real console entry in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedchain.pki import identity_dir, load_consortium, load_identity

CLI = [sys.executable, "-m", "fedchain.cli.main"]


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the fedchain CLI; never raises on a non-zero exit."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, env=full_env, timeout=60
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A consortium created through the CLI (org2 aggregates, 2 clients per org)."""
    out = tmp_path_factory.mktemp("cli") / "pki"
    result = run(
        "pki", "init", "--consortium", "clinet", "--orgs", "org1,org2,org3",
        "--aggregator", "org2", "--hosts", "agg.example.org,10.1.2.3", "--clients", "2",
        "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "created consortium clinet" in result.stdout
    return out


def show_json(path: Path) -> dict[str, Any]:
    result = run("pki", "show", path, "--json")
    assert result.returncode == 0, result.stderr
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def test_init_writes_a_loadable_consortium(made: Path) -> None:
    cons = load_consortium(made)
    assert (cons.name, cons.aggregator, cons.orgs) == ("clinet", "org2", ("org1", "org2", "org3"))
    agg = load_identity(identity_dir(made, "org2", "aggregator"))
    assert agg.role == "server"
    assert cons.org_of(agg.cert) == "org2"
    for key in made.rglob("key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_show_json_lists_every_identity_with_real_fingerprints(made: Path) -> None:
    info = show_json(made)
    assert info["aggregator"] == "org2"
    assert [o["id"] for o in info["orgs"]] == ["org1", "org2", "org3"]
    assert [o["id"] for o in info["orgs"] if o["aggregator"]] == ["org2"]
    cons = load_consortium(made)
    assert {o["id"]: o["ca_sha256"] for o in info["orgs"]} == cons.fingerprints()
    assert {o["id"]: o["tlsca_sha256"] for o in info["orgs"]} == cons.tls_fingerprints()
    names = {(i["org"], i["name"], i["role"]) for i in info["identities"]}
    expected = {
        (org, name, role)
        for org in ("org1", "org2", "org3")
        for name, role in (("admin", "admin"), ("client1", "client"), ("client2", "client"))
    } | {("org2", "aggregator", "server")}
    assert names == expected
    marked = [i for i in info["identities"] if i["aggregator"]]
    assert [(i["org"], i["name"]) for i in marked] == [("org2", "aggregator")]
    for ident in info["identities"]:
        loaded = load_identity(identity_dir(made, ident["org"], ident["name"]))
        assert ident["fingerprint"] == loaded.fingerprint
        assert ident["not_valid_after"] == loaded.cert.not_valid_after_utc.isoformat()


def test_show_human_readable(made: Path) -> None:
    result = run("pki", "show", made)
    assert result.returncode == 0, result.stderr
    assert "consortium clinet" in result.stdout
    assert "aggregator *" in result.stdout
    for org in ("org1", "org2", "org3"):
        assert org in result.stdout


def test_existing_folder_is_refused_without_force_then_moved_aside(tmp_path: Path) -> None:
    made = tmp_path / "pki"
    args = ("pki", "init", "--consortium", "c", "--orgs", "a", "--clients", "0", "--out", made)
    assert run(*args).returncode == 0
    before = load_consortium(made).fingerprints()
    assert_one_line_error(run(*args), "refusing to overwrite", "--force")
    assert load_consortium(made).fingerprints() == before

    forced = run(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    backups = list(made.parent.glob("pki.replaced-*"))
    assert len(backups) == 1
    assert str(backups[0]) in " ".join(forced.stdout.split())
    assert load_consortium(backups[0]).fingerprints() == before
    assert load_consortium(made).orgs == ("a",)


def test_force_with_bad_input_leaves_the_existing_folder_alone(made: Path) -> None:
    before = load_consortium(made).fingerprints()
    result = run("pki", "init", "--consortium", "c", "--orgs", "a,b c", "--force", "--out", made)
    assert_one_line_error(result, "invalid organization id 'b c'")
    assert load_consortium(made).fingerprints() == before
    assert not list(made.parent.glob(f"{made.name}.replaced-*"))


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (("--orgs", "org1,bad org"), ("invalid organization id 'bad org'",)),
        (("--orgs", "org1,org2", "--aggregator", "org9"), ("aggregator 'org9'",)),
        (("--orgs", " , "), ("--orgs",)),
        (("--orgs", "org1", "--clients", "-1"), ("clients",)),
        (
            ("--orgs", "org1", "--password-env", "FEDCHAIN_TEST_UNSET_VAR"),
            ("FEDCHAIN_TEST_UNSET_VAR",),
        ),
    ],
)
def test_bad_init_input_is_one_error_line(
    tmp_path: Path, extra: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    out = tmp_path / "pki"
    result = run("pki", "init", "--consortium", "c", "--out", out, *extra)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    bad_int = run(
        "pki",
        "init",
        "--consortium",
        "c",
        "--orgs",
        "a",
        "--clients",
        "many",
        "--out",
        tmp_path / "x",
    )
    assert bad_int.returncode == 2
    assert "--clients" in bad_int.stderr
    missing = run("pki", "init", "--orgs", "a", "--out", tmp_path / "x")
    assert missing.returncode == 2
    assert "--consortium" in missing.stderr
    assert not (tmp_path / "x").exists()


def test_show_of_a_folder_without_consortium(tmp_path: Path) -> None:
    assert_one_line_error(run("pki", "show", tmp_path, "--json"), "consortium.json")


def test_password_env_encrypts_keys(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    env = {"FEDCHAIN_TEST_KEY_PW": "correct horse"}
    args = (
        "pki",
        "init",
        "--consortium",
        "c",
        "--orgs",
        "o1",
        "--password-env",
        "FEDCHAIN_TEST_KEY_PW",
    )
    result = run(*args, "--out", out, env=env)
    assert result.returncode == 0, result.stderr
    ident = load_identity(identity_dir(out, "o1", "client1"), password=b"correct horse")
    assert ident.role == "client"
    assert b"ENCRYPTED" in (identity_dir(out, "o1", "admin") / "msp/keystore/key.pem").read_bytes()
    assert show_json(out)["name"] == "c"  # show needs no password: public files only


def test_installed_console_script(made: Path) -> None:
    script = Path(sys.executable).with_name("fedchain")
    if not script.exists():
        pytest.skip("the fedchain console script is not installed next to this interpreter")
    result = subprocess.run(
        [str(script), "pki", "show", str(made), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["aggregator"] == "org2"


def test_a_pki_of_the_old_single_ca_layout_gets_one_line_saying_how_to_reissue(
    made: Path, tmp_path: Path
) -> None:
    """The layout an older fedchain wrote (one CA per org, no tls/ folders, no TLS CA in
    consortium.json): refused in one line naming the fix, before Fabric could panic on it."""
    old = tmp_path / "old"
    shutil.copytree(made, old)
    doc = json.loads((old / "consortium.json").read_text())
    for entry in doc["orgs"]:
        del entry["tlsca_sha256"]
    (old / "consortium.json").write_text(json.dumps(doc))
    for tls in old.rglob("tls"):
        shutil.rmtree(tls)
    for org in ("org1", "org2", "org3"):
        msp = old / org / "msp"
        shutil.copyfile(msp / "cacerts" / "ca.pem", msp / "tlscacerts" / "ca.pem")
    for args in (
        ("pki", "show", old),
        ("pki", "fabric-nodes", "--pki", old, "--out", tmp_path / "crypto"),
    ):
        assert_one_line_error(run(*args), "older fedchain", "fedchain pki init --force")
    assert not (tmp_path / "crypto").exists()
