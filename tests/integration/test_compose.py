"""docker/ (the compose demo) and fabric-network/ crypto, checked without Docker or Fabric.

The crypto step runs for real, as the demo runs it (docker/scripts/setup.sh: fedchain's PKI,
then the peer and orderer identities from the same CAs; ``network.sh crypto`` is the same
step). The compose file is checked against them and against the repository: every build
context, Dockerfile, mounted path and script exists; every ``/shared`` path it names is made by
the setup step (or is in the explicit list of what the channel step makes); every variable has
a documented default; ports are distinct and loopback-only; services start in a workable order;
and the topology is the one fabric-network/ starts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
from tests.process_support import running

from fedchain.config import load_settings
from fedchain.pki import load_cert

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
NETWORK = REPO / "fabric-network"
COMPOSE_TEXT = (DOCKER / "compose.yaml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SHARED = "/shared"
#: What the one-shot "channel" service writes into the shared volume (the rest of /shared is
#: written by "setup"): the channel's genesis block, the configtx.yaml copy that made it, the
#: chaincode package and its package id (read by the chaincode service).
CHANNEL_STEP_OUTPUTS = {
    "/shared/configtx.yaml",
    "/shared/channel/fedchain.block",
    "/shared/chaincode/fedchain.tgz",
    "/shared/chaincode/package_id",
}
MSP_FILES = ("cacerts/ca.pem", "tlscacerts/ca.pem", "config.yaml", "signcerts/cert.pem",
             "keystore/key.pem")  # fmt: skip


def topology() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (NETWORK / "topology.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition("=")
            values[key] = value.strip('"')
    return values


TOPO = topology()
ORGS = TOPO["ORGS"].split()
PEERS = {org: f"{TOPO['PEER_NAME']}.{org}" for org in ORGS}
ORDERER = f"{TOPO['ORDERER_NAME']}.{TOPO['ORDERER_ORG']}"


def env_of(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def command_of(service: str) -> list[str]:
    return [str(part) for part in SERVICES[service].get("command", [])]


def tool_path() -> str:
    """PATH with this interpreter's scripts first (the fedchain command)."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``argv`` with the default Fabric ports: a developer's FEDCHAIN_FABRIC_* (a port base
    for their own network) must not move the compose topology these tests check."""
    own = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_FABRIC_")}
    full = {**own, "PATH": tool_path(), "COLUMNS": "200", **env}
    return subprocess.run(argv, capture_output=True, text=True, env=full, timeout=120,
                          check=False)  # fmt: skip


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared volume after the real setup step (docker/scripts/setup.sh, with the setup
    service's environment): fedchain's PKI, then the node identities from the same CAs."""
    work = tmp_path_factory.mktemp("compose") / "shared"
    result = run(["bash", str(DOCKER / "scripts" / "setup.sh")], **env_of("setup"),
                 FEDCHAIN_FABRIC_WORK=str(work), FABRIC_NETWORK_DIR=str(NETWORK))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return work


def local(container_path: str, shared: Path) -> Path:
    assert container_path.startswith(SHARED + "/"), container_path
    return shared / container_path.removeprefix(SHARED + "/")


def shared_paths() -> set[str]:
    """Every /shared/... path named in the compose file (env values, commands, lists)."""
    return set(re.findall(r"/shared/[\w./-]+", COMPOSE_TEXT))


def sans(cert_path: Path) -> list[str]:
    ext = load_cert(cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return [str(v) for v in ext.value.get_values_for_type(x509.DNSName)]


# --- the compose file itself ---------------------------------------------------------------------


def test_compose_declares_the_whole_demo() -> None:
    assert COMPOSE["name"] == "fedchain"
    assert set(SERVICES) == {"setup", ORDERER, *PEERS.values(), "channel", "chaincode",
                             "aggregator", *ORGS, "audit"}  # fmt: skip
    assert SERVICES[ORDERER]["image"] == "hyperledger/fabric-orderer:${FABRIC_VERSION:-2.5}"
    for org, peer in PEERS.items():
        assert SERVICES[peer]["image"] == "hyperledger/fabric-peer:${FABRIC_VERSION:-2.5}"
        assert env_of(peer)["CORE_PEER_LOCALMSPID"] == org
        assert env_of(peer)["CORE_PEER_ID"] == peer
        assert env_of(peer)["CORE_PEER_GOSSIP_EXTERNALENDPOINT"] == f"{peer}:7051"
    assert SERVICES["channel"]["image"] == "hyperledger/fabric-tools:${FABRIC_VERSION:-2.5}"
    assert SERVICES["chaincode"]["build"]["context"] == "../chaincode"
    assert SERVICES["aggregator"]["entrypoint"] == ["fedchain-server"]
    for org in ORGS:
        assert SERVICES[org]["entrypoint"] == ["fedchain-client"]
        assert f"--org={org}" in command_of(org)
        assert "--server=aggregator:9443" in command_of(org)


def test_models_live_on_a_volume_that_a_member_audits() -> None:
    """The aggregator writes its models to the "models" volume (docker/down.sh keeps it); the
    "audit" service (only on `docker compose run`) reads them as org2 through org2's peer."""
    assert "--models=/data/models" in command_of("aggregator")
    assert ("models", "/data/models") in mounts("aggregator")
    audit = SERVICES["audit"]
    assert audit["profiles"] == ["audit"]
    assert audit["entrypoint"] == ["fedchain", "audit"]
    assert command_of("audit") == ["--models=/models"]
    assert mounts("audit") == [("shared", "/shared"), ("models", "/models")]
    assert all(spec.endswith(":ro") for spec in audit["volumes"])
    env = env_of("audit")
    assert env["FEDCHAIN_ORGANIZATION__ID"] == env["FEDCHAIN_LEDGER__FABRIC__MSP_ID"] == "org2"
    assert env["FEDCHAIN_LEDGER__FABRIC__ENDPOINT"] == f"{PEERS['org2']}:7051"
    assert "models" in COMPOSE["volumes"]


def test_every_service_runs_under_an_init_so_sigterm_stops_it() -> None:
    """node, python and Fabric's nodes as PID 1 ignore SIGTERM without a handler: an init
    forwards it, so `docker compose down` need not wait 10 s per container to kill them."""
    assert [name for name, spec in SERVICES.items() if spec.get("init") is not True] == []


def test_build_contexts_dockerfiles_and_copied_files_exist() -> None:
    builds = {name: s["build"] for name, s in SERVICES.items() if "build" in s}
    assert builds, "no service builds an image"
    for name, build in builds.items():
        context = (DOCKER / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    assert (context / source).exists(), f"{name}: COPY {source} not in {context}"
    fedchain_file = DOCKER / "fedchain.Dockerfile"
    text = fedchain_file.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim\nFROM ${PYTHON_IMAGE}\n" in text
    assert 'pip install ".[fabric]"' in text
    assert "torch" not in text.split("FROM", 1)[1]
    assert "USER fedchain" in text
    ignore = (DOCKER / "fedchain.Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1 :][:3] == ["!pyproject.toml", "!README.md", "!src"]


def test_images_build_offline_from_base_images_given_as_arguments() -> None:
    """No `# syntax=` line (BuildKit would fetch a frontend from Docker Hub); the builds use the
    host's network (apt, pip, npm); each base image is a build argument whose compose default,
    Dockerfile default and docker/.env.example value are the same public image."""
    example = (DOCKER / ".env.example").read_text()
    expected = {"fedchain.Dockerfile": ("PYTHON_IMAGE", "FEDCHAIN_PYTHON_IMAGE"),
                "Dockerfile": ("NODE_IMAGE", "FEDCHAIN_NODE_IMAGE")}  # fmt: skip
    builds = {name: s["build"] for name, s in SERVICES.items() if "build" in s}
    for name, build in builds.items():
        dockerfile = (DOCKER / build["context"]).resolve() / build.get("dockerfile", "Dockerfile")
        text = dockerfile.read_text()
        assert not re.search(r"^# *syntax *=", text, re.MULTILINE), dockerfile
        assert build["network"] == "host", name
        arg, variable = expected[dockerfile.name]
        default = re.search(rf"^ARG {arg}=(\S+)$", text, re.MULTILINE)
        assert default is not None, (dockerfile, arg)
        assert build["args"] == {arg: f"${{{variable}:-{default.group(1)}}}"}, name
        assert f"\n{variable}={default.group(1)}\n" in example
        bases = [line.split()[1] for line in text.splitlines() if line.startswith("FROM")]
        assert bases, dockerfile
        assert set(bases) == {f"${{{arg}}}"}, dockerfile


def mounts(service: str) -> list[tuple[str, str]]:
    pairs = []
    for spec in SERVICES[service].get("volumes", []):
        source, target = spec.split(":")[:2]
        pairs.append((source, target))
    return pairs


def test_mounted_host_paths_named_volumes_and_entrypoint_scripts_exist() -> None:
    declared = set(COMPOSE["volumes"])
    for name in SERVICES:
        for source, _target in mounts(name):
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
        entry = SERVICES[name].get("entrypoint", [])
        scripts = [p for p in entry if p.startswith("/fedchain/")]
        for script in scripts:
            host = next((DOCKER / src / script.removeprefix(dst + "/")
                         for src, dst in mounts(name) if script.startswith(dst + "/")),
                        None)  # fmt: skip
            assert host is not None, f"{name}: {script} is not under a mount"
            assert host.is_file(), f"{name}: {host} missing"
            shell = entry[0]
            check = subprocess.run([shell, "-n", str(host)], capture_output=True, check=False)
            assert check.returncode == 0, f"{shell} -n {host}"
    assert "/shared" in {t for s in SERVICES for _src, t in mounts(s)}


DOCKER_SCRIPTS = [DOCKER / "up.sh", DOCKER / "down.sh", *sorted((DOCKER / "scripts").glob("*.sh"))]


@pytest.mark.parametrize("path", DOCKER_SCRIPTS, ids=lambda p: p.name)
def test_docker_scripts_parse(path: Path) -> None:
    shell = "sh" if path.read_text().startswith("#!/bin/sh") else "bash"
    result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    if path.parent == DOCKER:
        assert os.access(path, os.X_OK)
        assert "set -euo pipefail" in path.read_text()


# shellcheck: tests/unit/test_shell_scripts.py checks every shell script of the repository.


def test_every_variable_has_a_default_documented_in_env_example() -> None:
    uses = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}", COMPOSE_TEXT)
    assert uses, "the compose file uses no variables"
    example = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key] = value
    for name, default in uses:
        assert default, f"${{{name}}} has no default"
        assert example.get(name) == default, f"{name} is not documented with default {default}"
    assert set(example) == {name for name, _ in uses}, "docker/.env.example documents unused names"
    assert "$$" not in COMPOSE_TEXT


def test_published_ports_are_loopback_and_do_not_clash() -> None:
    native = {int(p) for key in ("PEER_PORTS", "PEER_CHAINCODE_PORTS", "PEER_OPERATIONS_PORTS",
                                 "ORDERER_PORT", "ORDERER_ADMIN_PORT", "ORDERER_OPERATIONS_PORT",
                                 "CHAINCODE_PORT", "AGGREGATOR_PORT")
              for p in TOPO[key].split()}  # fmt: skip
    host_ports = []
    for name, service in SERVICES.items():
        for spec in service.get("ports", []):
            match = re.fullmatch(r"127\.0\.0\.1:\$\{\w+:-(\d+)\}:(\d+)", spec)
            assert match, f"{name}: port {spec} is not published on 127.0.0.1 with a default"
            host_ports.append(int(match.group(1)))
    assert len(host_ports) == len(PEERS)
    assert len(set(host_ports)) == len(host_ports)
    assert not set(host_ports) & native, "compose host ports clash with network.sh's"


def test_services_start_in_a_workable_order() -> None:
    def deps(name: str) -> dict[str, str]:
        raw = SERVICES[name].get("depends_on", {})
        return {dep: spec["condition"] for dep, spec in raw.items()}

    done, started = "service_completed_successfully", "service_started"
    assert deps(ORDERER) == {"setup": done}
    for peer in PEERS.values():
        assert deps(peer) == {"setup": done}
    assert deps("channel") == {ORDERER: started, **dict.fromkeys(PEERS.values(), started)}
    assert deps("chaincode") == {"channel": done}
    assert deps("aggregator") == {"channel": done, "chaincode": started}
    for org in ORGS:
        assert deps(org) == {"aggregator": started}
    started_by_up = [name for name, spec in SERVICES.items() if not spec.get("profiles")]
    order: list[str] = []
    while len(order) < len(started_by_up):  # a topological order exists: no cycle
        ready = [s for s in started_by_up if s not in order and set(deps(s)) <= set(order)]
        assert ready, f"dependency cycle among {set(started_by_up) - set(order)}"
        order += sorted(ready)
    assert order[0] == "setup"


# --- against the real setup step ---------------------------------------------------------------


def test_every_shared_path_is_made_by_the_setup_step(shared: Path) -> None:
    named = shared_paths()
    assert len(named) > 20
    missing = [p for p in sorted(named - CHANNEL_STEP_OUTPUTS) if not local(p, shared).exists()]
    assert not missing, f"named in compose.yaml but not made by setup: {missing}"
    # The channel step's outputs are where its code (fabric-network/scripts) writes them.
    script = (
        f"source {NETWORK}/scripts/common.sh; source {NETWORK}/scripts/chaincode.sh; "
        'echo "$WORK_DIR/configtx.yaml"; echo "$CHANNEL_DIR/$CHANNEL.block"; '
        'echo "$CC_PACKAGE"; echo "$CC_DIR/package_id"'
    )
    result = run(["bash", "-c", script], FEDCHAIN_NETWORK_MODE="compose",
                 FEDCHAIN_FABRIC_WORK=SHARED, FABRIC_NETWORK_DIR=str(NETWORK))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == CHANNEL_STEP_OUTPUTS
    assert "id_file=/shared/chaincode/package_id" in (DOCKER / "scripts/chaincode.sh").read_text()


def test_setup_step_issues_complete_msps_for_the_container_host_names(shared: Path) -> None:
    for org, peer in PEERS.items():
        env = env_of(peer)
        msp = local(env["CORE_PEER_MSPCONFIGPATH"], shared)
        for rel in MSP_FILES:
            assert (msp / rel).is_file(), f"{msp / rel} missing"
        subject = load_cert(msp / "signcerts" / "cert.pem").subject
        assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] \
            == ["peer"]  # fmt: skip
        assert peer in sans(local(env["CORE_PEER_TLS_CERT_FILE"], shared))
        assert local(env["CORE_PEER_TLS_KEY_FILE"], shared).is_file()
        org_tls_ca = shared / "pki" / org / "msp" / "tlscacerts" / "ca.pem"
        root = local(env["CORE_PEER_TLS_ROOTCERT_FILE"], shared).read_bytes()
        assert root == org_tls_ca.read_bytes()
    orderer = env_of(ORDERER)
    assert ORDERER in sans(local(orderer["ORDERER_GENERAL_TLS_CERTIFICATE"], shared))
    for rel in MSP_FILES:
        assert (local(orderer["ORDERER_GENERAL_LOCALMSPDIR"], shared) / rel).is_file()
    aggregator_tls = shared / "pki" / TOPO["AGGREGATOR_ORG"] / "users/aggregator/tls"
    assert "aggregator" in sans(aggregator_tls / "server.crt")  # clients dial aggregator:9443


def test_network_sh_crypto_is_the_same_step_and_keeps_what_exists(
    shared: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    shutil.copytree(shared, work)
    (work / ".fedchain-fabric-network").touch()
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()}
    result = run([str(NETWORK / "network.sh"), "crypto"], FEDCHAIN_FABRIC_WORK=str(work))
    assert result.returncode == 0, result.stderr
    assert f"keeping the consortium PKI in {work}/pki" in result.stderr
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} == before
    for org in ORGS:
        node = work / "crypto" / org / "peers" / TOPO["PEER_NAME"]
        for rel in MSP_FILES:
            assert (node / "msp" / rel).is_file()
        assert sans(node / "tls" / "server.crt") == ["localhost", PEERS[org]]


def test_network_sh_toml_files_point_at_the_generated_material(
    shared: Path, tmp_path: Path
) -> None:
    roles = [(TOPO["AGGREGATOR_ORG"], "server"), *((org, "client") for org in ORGS)]
    for org, role in roles:
        result = run([str(NETWORK / "network.sh"), "toml", org, role],
                     FEDCHAIN_FABRIC_WORK=str(shared))  # fmt: skip
        assert result.returncode == 0, result.stderr
        path = tmp_path / f"{org}-{role}.toml"
        path.write_text(result.stdout)
        settings = load_settings(path, env={})
        fabric = settings.ledger.fabric
        assert settings.ledger.backend == "fabric"
        assert fabric is not None
        assert fabric.endpoint == f"127.0.0.1:{TOPO['PEER_PORTS'].split()[ORGS.index(org)]}"
        assert (fabric.channel, fabric.chaincode, fabric.msp_id) == (
            TOPO["CHANNEL"], TOPO["CHAINCODE_NAME"], org)
        assert fabric.tls_ca is not None
        assert fabric.identity is not None
        assert settings.organization is not None
        assert settings.organization.identity is not None
        assert fabric.identity == settings.organization.identity / "msp"
        # The ledger identity is the process's own, issued by its org's signing CA; its peer's
        # TLS chains to the same org's TLS CA.
        cert = load_cert(fabric.identity / "signcerts" / "cert.pem")
        cert.verify_directly_issued_by(load_cert(fabric.identity / "cacerts" / "ca.pem"))
        assert fabric.tls_ca == shared / "pki" / org / "msp" / "tlscacerts" / "ca.pem"
        peer_tls = shared / "crypto" / org / "peers" / TOPO["PEER_NAME"] / "tls" / "server.crt"
        load_cert(peer_tls).verify_directly_issued_by(load_cert(fabric.tls_ca))
        expected = "aggregator" if role == "server" else "client1"
        assert settings.organization.identity.name == expected


@pytest.mark.parametrize("service", ["aggregator", *ORGS])
def test_fedchain_services_configure_a_valid_fabric_ledger(shared: Path, service: str) -> None:
    env = {k: (str(local(v, shared)) if v.startswith(SHARED) else v)
           for k, v in env_of(service).items()}  # fmt: skip
    settings = load_settings(None, env=env)
    fabric = settings.ledger.fabric
    assert settings.ledger.backend == "fabric"
    assert fabric is not None
    org = fabric.msp_id
    assert org == (TOPO["AGGREGATOR_ORG"] if service == "aggregator" else service)
    assert fabric.endpoint == f"{PEERS[org]}:7051"  # the organization's own peer
    assert (fabric.channel, fabric.chaincode) == (TOPO["CHANNEL"], TOPO["CHAINCODE_NAME"])
    # The TLS CA the process trusts is the one that issued its peer's TLS certificate.
    peer_tls = local(env_of(PEERS[org])["CORE_PEER_TLS_CERT_FILE"], shared)
    assert fabric.tls_ca is not None
    load_cert(peer_tls).verify_directly_issued_by(load_cert(fabric.tls_ca))
    pki = next(a.split("=", 1)[1] for a in command_of(service) if a.startswith("--pki="))
    assert (local(pki, shared) / "consortium.json").is_file()


def test_service_commands_use_existing_cli_options() -> None:
    from fedchain.cli import client, server  # late: imports the runtime

    for service, app in [("aggregator", server.app), *((org, client.app) for org in ORGS)]:
        command = typer.main.get_command(app)
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for arg in command_of(service):
            assert arg.split("=", 1)[0] in options, f"{service}: unknown option {arg}"


# --- the same network as fabric-network/ --------------------------------------------------------


def node_env_names(function: str) -> set[str]:
    script = (f"source {NETWORK}/scripts/common.sh; source {NETWORK}/scripts/nodes.sh; "
              f'{function}; printf "%s\\n" "${{ENV_VARS[@]}}"')  # fmt: skip
    result = run(["bash", "-c", script], FABRIC_NETWORK_DIR=str(NETWORK))
    assert result.returncode == 0, result.stderr
    return {line.split("=", 1)[0] for line in result.stdout.splitlines()}


def test_compose_nodes_set_the_same_variables_as_network_sh() -> None:
    native_peer = node_env_names(f"peer_env {ORGS[0]}")
    for peer in PEERS.values():
        assert set(env_of(peer)) == native_peer, peer
    assert set(env_of(ORDERER)) == node_env_names("orderer_env")


def test_compose_runs_the_topology_of_fabric_network() -> None:
    configtx = yaml.safe_load((NETWORK / "configtx.yaml").read_text())
    native = configtx["Profiles"][TOPO["PROFILE_NATIVE"]]
    compose = configtx["Profiles"][TOPO["PROFILE_COMPOSE"]]
    peer_orgs = [env_of(p)["CORE_PEER_LOCALMSPID"] for p in PEERS.values()]
    assert peer_orgs == ORGS == [o["ID"] for o in native["Application"]["Organizations"]]
    anchors = [f"{o['AnchorPeers'][0]['Host']}:{o['AnchorPeers'][0]['Port']}"
               for o in compose["Application"]["Organizations"]]  # fmt: skip
    assert anchors == [env_of(p)["CORE_PEER_ADDRESS"] for p in PEERS.values()]
    [orderer_org] = compose["Orderer"]["Organizations"]
    assert orderer_org["ID"] == env_of(ORDERER)["ORDERER_GENERAL_LOCALMSPID"] == TOPO["ORDERER_ORG"]
    assert orderer_org["OrdererEndpoints"] == [f"{ORDERER}:{TOPO['ORDERER_PORT']}"]
    for service in ("aggregator", *ORGS):
        env = env_of(service)
        assert env["FEDCHAIN_LEDGER__FABRIC__CHANNEL"] == TOPO["CHANNEL"]
        assert env["FEDCHAIN_LEDGER__FABRIC__CHAINCODE"] == TOPO["CHAINCODE_NAME"]
    assert env_of("aggregator")["FEDCHAIN_LEDGER__FABRIC__MSP_ID"] == TOPO["AGGREGATOR_ORG"]
    # The chaincode service is where the compose-mode package tells the peers to dial.
    result = run(["bash", "-c", f"source {NETWORK}/scripts/common.sh; chaincode_address; "
                  "configtx_profile"], FEDCHAIN_NETWORK_MODE="compose")  # fmt: skip
    address, profile = result.stdout.split()
    assert address == f"chaincode:{env_of('chaincode')['CHAINCODE_SERVER_ADDRESS'].split(':')[1]}"
    assert profile == TOPO["PROFILE_COMPOSE"]
    setup_env = env_of("setup")["FEDCHAIN_AGGREGATOR_HOSTS"]
    assert setup_env == "aggregator"
    scripts = (DOCKER / "scripts" / "setup.sh").read_text() + (
        DOCKER / "scripts" / "channel.sh").read_text()  # fmt: skip
    assert scripts.count("export FEDCHAIN_NETWORK_MODE=compose") == 2


# A stand-in for `docker compose logs --follow` as the docker CLI runs it before its compose
# plugin has connected back (docker/cli#4402): the CLI swallows SIGTERM, and only the third one
# ends it and its plugin (here a `sleep`). The real race is too narrow to hit on demand; this
# has the real CLI's observable behaviour. It prints the plugin's pid.
SWALLOWING_CLI = """\
sleep 1000 & plugin=$!
echo "$plugin"
n=0
trap 'n=$((n + 1)); if ((n >= 3)); then kill "$plugin"; exit 143; fi' TERM
while kill -0 "$plugin" 2>/dev/null; do wait "$plugin"; done
"""


def test_up_sh_stops_a_log_follower_that_swallows_sigterm(tmp_path: Path) -> None:
    """up.sh stops its `docker compose logs --follow` when a client fails, to fail at once. Its
    plain ``kill`` and ``wait`` once waited until the other containers had stopped (9 min, a
    loaded CI run): the docker CLI had swallowed the SIGTERM. up.sh's function ends both."""
    text = (DOCKER / "up.sh").read_text()
    start = text.index("stop_logs() {")
    stop_logs = text[start:text.index("\n}\n", start) + 3]
    script = tmp_path / "stop.sh"
    script.write_text(
        "set -euo pipefail\n" + stop_logs
        + f"bash {tmp_path / 'cli.sh'} > {tmp_path / 'plugin.pid'} &\nlogs_pid=$!\n"
        + f"until [[ -s {tmp_path / 'plugin.pid'} ]]; do sleep 0.05; done\n"
        + "stop_logs\n! kill -0 \"$logs_pid\" 2>/dev/null\necho stopped\n"
    )  # fmt: skip
    (tmp_path / "cli.sh").write_text(SWALLOWING_CLI)
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"
    assert not running(int((tmp_path / "plugin.pid").read_text())), "the plugin lived on"
