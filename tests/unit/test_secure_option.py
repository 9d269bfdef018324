"""``--secure`` / ``[server] secure``: how the aggregator's options ask for secure aggregation."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain.cli.options import client_options, server_options
from fedchain.config import Settings


def _options(settings: Settings, **flags: object) -> int | None:
    given = {"identity": Path("agg"), "app": "pkg.server:app", **flags}
    return server_options(settings, **given).secure_max_weight


def test_without_secure_no_strategy_is_wrapped() -> None:
    assert _options(Settings()) is None
    assert _options(Settings(), max_weight=500) is None  # a bound alone turns nothing on


@pytest.mark.parametrize(
    ("settings", "flags", "expected"),
    [
        (Settings(), {"secure": True}, 100_000),
        (Settings(), {"secure": True, "max_weight": 500}, 500),
        (Settings.model_validate({"server": {"secure": True, "max_weight": 700}}), {}, 700),
        (Settings.model_validate({"server": {"secure": True}}), {"max_weight": 9}, 9),
    ],
)
def test_secure_takes_its_bound_from_the_flag_over_the_file(
    settings: Settings, flags: dict[str, object], expected: int
) -> None:
    assert _options(settings, **flags) == expected


def test_a_bound_below_one_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="max_weight"):
        Settings.model_validate({"server": {"max_weight": 0}})


@pytest.mark.parametrize(
    ("settings", "flags", "expected"),
    [
        (Settings(), {}, False),
        (Settings(), {"secure": True}, True),
        (Settings.model_validate({"client": {"secure": True}}), {}, True),
    ],
)
def test_an_organization_opts_in_by_flag_or_file(
    settings: Settings, flags: dict[str, object], expected: bool
) -> None:
    given = {"identity": Path("org2"), "app": "pkg.client:app", **flags}
    assert client_options(settings, **given).secure is expected
