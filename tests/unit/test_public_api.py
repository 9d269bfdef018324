"""The curated public API: every exported name resolves, heavy ones only when asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fedchain


@pytest.mark.parametrize("name", fedchain.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(fedchain, name) is not None


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = fedchain.nope  # type: ignore[attr-defined]


def test_importing_fedchain_does_not_import_flower() -> None:
    code = "import sys, fedchain; print('flwr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_fedchain_command_starts_without_flower() -> None:
    """`fedchain pki`, `audit`, `--help` stay fast: Flower loads only for runtime commands."""
    code = "import sys, fedchain.cli.main; print('flwr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
