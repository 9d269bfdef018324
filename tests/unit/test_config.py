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
insecure_dev = false

[server]
address = "0.0.0.0:9443"
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
        "FEDCHAIN_CLIENT__NODE_CONFIG": '{"data-path": "/data"}',
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
    assert settings.client.node_config == {"data-path": "/data"}
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


@pytest.mark.parametrize(
    ("text", "replacement"),
    [
        ('[server]\nhosts = ["agg.example.org"]\n', "fedchain pki org init --aggregator --hosts"),
        ('[tls]\nca_bundle = "bundle.pem"\n', "trusts exactly the TLS CAs of the consortium"),
    ],
    ids=["server.hosts", "tls.ca_bundle"],
)
def test_keys_fedchain_never_read_are_refused_naming_what_to_use(
    tmp_path: Path, text: str, replacement: str
) -> None:
    """``server.hosts`` and ``[tls] ca_bundle`` were accepted and silently ignored."""
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), env={})
    message = str(info.value)
    assert "Extra inputs are not permitted: not a setting: " in message
    assert replacement in message


def test_a_misspelt_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    text = '[server]\nadress = "0.0.0.0:9443"\n[ledger]\nbusy_timeout = 3\n'
    text += '[organisation]\nid = "o"\n'
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), env={"FEDCHAIN_CLIENT__SEVER": "a:1"})
    message = str(info.value)
    for expected in (
        "server.adress: Extra inputs are not permitted: did you mean server.address?",
        "ledger.busy_timeout: Extra inputs are not permitted: did you mean ledger.busy_timeout_s?",
        "organisation: Extra inputs are not permitted: did you mean organization?",
        "client.sever: Extra inputs are not permitted (from FEDCHAIN_CLIENT__SEVER): "
        "did you mean client.server?",
    ):
        assert expected in message
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, "[server]\nzzz = 1\n"), env={})
    assert str(info.value).endswith("server.zzz: Extra inputs are not permitted")


def test_a_section_made_by_one_variable_names_it_and_what_else_it_needs() -> None:
    """``FEDCHAIN_LEDGER__FABRIC__CHANNEL=ch2`` alone said only ``ledger.fabric.endpoint:
    Field required``, without saying the section came from that variable."""
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"FEDCHAIN_LEDGER__FABRIC__CHANNEL": "ch2"})
    assert str(info.value) == (
        "configuration: ledger.fabric.endpoint: Field required: the ledger.fabric section comes "
        "only from FEDCHAIN_LEDGER__FABRIC__CHANNEL; set FEDCHAIN_LEDGER__FABRIC__ENDPOINT too, "
        "or write the section in fedchain.toml"
    )


def test_a_variable_completing_the_file_s_section_is_not_blamed(tmp_path: Path) -> None:
    path = _write(tmp_path, '[ledger.fabric]\nchannel = "c"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"FEDCHAIN_LEDGER__FABRIC__CHAINCODE": "cc"})
    assert str(info.value).endswith("ledger.fabric.endpoint: Field required")


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
