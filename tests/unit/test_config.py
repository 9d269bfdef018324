"""Unit tests for fedchain.config: TOML loading, path resolution, env overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain.config import Settings, load_settings
from fedchain.errors import ConfigError

FULL = """
run_config = { local-epochs = 2, lr = 0.1 }

[organization]
id = "org2"
identity = "pki/org2/users/client1"
pki = "pki"
password_env = "ORG2_KEY_PASSWORD"

[ledger]
backend = "fabric"
path = "data/ledger.sqlite"

[ledger.fabric]
endpoint = "peer0.org2:7051"
tls_ca = "/etc/fabric/tlsca.pem"
channel = "fl"
msp_id = "org2"

[tls]
ca_bundle = "bundle.pem"

[server]
address = "0.0.0.0:9443"
hosts = ["agg.example.org", "10.0.0.1"]
rounds = 5
min_replies = 2
deadline_s = 30
selection = "top-k"
k = 2

[client]
server = "agg.example.org:9443"
app = "my_pkg.client:app"
node_config = { partition-id = 1 }
"""


def _write(tmp_path: Path, text: str, name: str = "fedchain.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_file_or_env() -> None:
    settings = load_settings(None, env={})
    assert settings == Settings()
    assert settings.ledger.backend == "embedded"
    assert settings.ledger.path == Path("fedchain-ledger.sqlite")
    assert settings.server.address == "127.0.0.1:9443"
    assert settings.tls.insecure_dev is False
    assert settings.organization is None


def test_full_file_is_parsed_and_relative_paths_follow_the_file(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, FULL), env={})
    org = settings.organization
    assert org is not None
    assert org.id == "org2"
    assert org.identity == tmp_path / "pki/org2/users/client1"
    assert org.pki == tmp_path / "pki"
    assert settings.ledger.path == tmp_path / "data/ledger.sqlite"
    fabric = settings.ledger.fabric
    assert fabric is not None
    assert fabric.tls_ca == Path("/etc/fabric/tlsca.pem")  # absolute stays as is
    assert (fabric.channel, fabric.chaincode, fabric.msp_id) == ("fl", "fedchain", "org2")
    assert settings.tls.ca_bundle == tmp_path / "bundle.pem"
    assert settings.server.hosts == ["agg.example.org", "10.0.0.1"]
    assert (settings.server.rounds, settings.server.k, settings.server.deadline_s) == (5, 2, 30.0)
    assert settings.client.app == "my_pkg.client:app"  # an import reference is not a path
    assert settings.client.node_config == {"partition-id": 1}
    assert settings.run_config == {"local-epochs": 2, "lr": 0.1}


def test_app_directory_is_resolved_against_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[client]\napp = "apps/mnist"\n')
    assert load_settings(path, env={}).client.app == str(tmp_path / "apps/mnist")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "FEDCHAIN_SERVER__ROUNDS": "9",
        "FEDCHAIN_LEDGER__PATH": "elsewhere.sqlite",
        "FEDCHAIN_LEDGER__FABRIC__CHANNEL": "other",
        "FEDCHAIN_SERVER__HOSTS": "h1, h2",
        "FEDCHAIN_TLS__INSECURE_DEV": "true",
        "FEDCHAIN_PASSWORD": "not a setting: no '__', ignored",
        "OTHER__THING": "ignored",
    }
    settings = load_settings(_write(tmp_path, FULL), env=env)
    assert settings.server.rounds == 9
    assert settings.ledger.path == Path("elsewhere.sqlite")  # env values are not file-relative
    assert settings.ledger.fabric is not None
    assert settings.ledger.fabric.channel == "other"
    assert settings.ledger.fabric.endpoint == "peer0.org2:7051"  # rest of the section kept
    assert settings.server.hosts == ["h1", "h2"]
    assert settings.tls.insecure_dev is True


def test_environment_alone_can_create_sections() -> None:
    env = {"FEDCHAIN_ORGANIZATION__ID": "org3", "FEDCHAIN_CLIENT__NODE_CONFIG": '{"a": 1}'}
    settings = load_settings(None, env=env)
    assert settings.organization is not None
    assert settings.organization.id == "org3"
    assert settings.client.node_config == {"a": 1}


def test_every_bad_field_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        '[server]\nrounds = "many"\naddress = "nohost"\n'
        '[ledger]\nbackend = "blockchain"\n'
        "[tls]\nunknown = 1\n"
        '[organization]\nid = "bad org"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), env={"FEDCHAIN_SERVER__MIN_REPLIES": "0"})
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'fedchain.toml'}: ")
    assert "\n" not in message
    for expected in (
        "server.rounds: Input should be a valid integer",
        "server.address: expected host:port, got 'nohost'",
        "ledger.backend: Input should be 'memory', 'embedded' or 'fabric'",
        "tls.unknown: Extra inputs are not permitted",
        "organization.id: String should match pattern",
        "server.min_replies: Input should be greater than or equal to 1 "
        "(from FEDCHAIN_SERVER__MIN_REPLIES)",
    ):
        assert expected in message


def test_cross_field_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ledger: backend 'fabric' needs a \[ledger.fabric\]"):
        load_settings(_write(tmp_path, '[ledger]\nbackend = "fabric"\n'), env={})
    with pytest.raises(ConfigError, match="server: selection 'top-k' needs k"):
        load_settings(_write(tmp_path, '[server]\nselection = "top-k"\n', "a.toml"), env={})
    with pytest.raises(ConfigError, match="selection 'threshold' needs threshold"):
        load_settings(None, env={"FEDCHAIN_SERVER__SELECTION": "threshold"})


def test_list_items_are_located_by_index(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.hosts\[1\]: Input should be a valid string"):
        load_settings(_write(tmp_path, '[server]\nhosts = ["a", 2]\n'), env={})


def test_missing_file_and_bad_toml_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: configuration file not found"):
        load_settings(missing, env={})
    broken = _write(tmp_path, "[server\nrounds = 1\n", "broken.toml")
    with pytest.raises(ConfigError, match=r"broken\.toml: invalid TOML"):
        load_settings(broken, env={})


def test_settings_are_immutable() -> None:
    settings = load_settings(None, env={})
    with pytest.raises(ValueError, match="frozen"):
        settings.server.rounds = 4  # type: ignore[misc]
