"""The run config a Flower app directory gets (``flwr run`` semantics), and how it travels."""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.app import ConfigRecord, RecordDict
from flwr.common.config import get_fused_config_from_dir
from flwr.serverapp.strategy import FedAvg, Strategy

from fedchain.errors import ConfigError
from fedchain.flower.recorded import ledger_recorded
from fedchain.runtime.apps import AppRef, resolve_app
from fedchain.runtime.run_config import (
    RUN_CONFIG_RECORD,
    effective_run_config,
    ledger_config,
    split_run_config,
    with_run_config,
)

PYPROJECT = """
[project]
name = "a"
version = "1.0.0"

[tool.flwr.app]
publisher = "tests"

[tool.flwr.app.components]
serverapp = "a.server:app"
clientapp = "a.client:app"

[tool.flwr.app.config]
num-server-rounds = 3
penalty = "l2"
use-bias = true
lr = 1.0
epochs = 2

[tool.flwr.app.config.model]
width = 8
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    return tmp_path


def test_an_app_directory_gets_what_flwr_run_gives(app_dir: Path) -> None:
    overrides = {"penalty": "l1", "use-bias": False, "model.width": 4}
    got = effective_run_config(resolve_app(str(app_dir), "clientapp"), overrides, rounds=5)
    want = get_fused_config_from_dir(app_dir, {**overrides, "num-server-rounds": 5})
    assert got == want
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]  # 1.0 stays float


def test_an_undeclared_override_or_rounds_without_num_server_rounds_is_refused(
    app_dir: Path,
) -> None:
    ref = resolve_app(str(app_dir), "serverapp")
    with pytest.raises(ConfigError, match="does not declare"):
        effective_run_config(ref, {"typo": 1}, None)
    bare = AppRef(ref.reference, ref.directory, {"lr": 0.1})
    with pytest.raises(ConfigError, match="num-server-rounds"):
        effective_run_config(bare, {}, 4)
    assert effective_run_config(bare, {}, None) == {"lr": 0.1}  # the app decides its rounds


def test_a_module_attr_app_gets_rounds_under_both_names() -> None:
    config = effective_run_config(AppRef("m:app"), {"lr": 0.5}, None)
    assert config == {"lr": 0.5, "rounds": 3, "num-server-rounds": 3}


def test_the_run_config_travels_typed_beside_the_content_and_leaves_it_unchanged() -> None:
    content = RecordDict({"config": ConfigRecord({"lr": 0.1})})
    config = {"penalty": "l2", "use-bias": True, "lr": 1.0, "epochs": 2}
    carried = with_run_config(content, config)
    assert list(content) == ["config"]
    assert split_run_config(carried) == config
    assert list(carried) == ["config"]  # removed before the ClientApp sees the message
    assert split_run_config(content) is None
    assert RUN_CONFIG_RECORD not in carried
    assert RUN_CONFIG_RECORD in with_run_config(content, config)
    assert ledger_config(config) == {"use-bias": 1, "lr": 1.0, "epochs": 2}  # numbers only


def test_ledger_recorded_replaces_flower_s_start_only_within_the_block() -> None:
    """(Its effect, an unchanged FedAvg's models on the ledger, is shown end to end by
    tests/integration/test_flower_app_items.py.)"""
    original = Strategy.start
    with ledger_recorded():
        assert Strategy.start is not original
        assert FedAvg.start is Strategy.start  # inherited by Flower's strategies
    assert Strategy.start is original
