"""The explorer's reading side: what it leaves alone of an organization's settings."""

from __future__ import annotations

from pathlib import Path

from fedchain.config import load_settings
from fedchain.explorer.source import _without_resume_file


def test_a_fabric_resume_file_is_never_the_explorers(tmp_path: Path) -> None:
    toml = tmp_path / "fedchain.toml"
    toml.write_text('[ledger]\nbackend = "fabric"\n[ledger.fabric]\nendpoint = "127.0.0.1:7051"\n'
                    'resume_file = "resume.json"\n')  # fmt: skip
    settings = load_settings(toml, env={})
    assert settings.ledger.fabric is not None
    assert settings.ledger.fabric.resume_file == tmp_path / "resume.json"
    reading = _without_resume_file(settings)
    assert reading.ledger.fabric is not None
    assert reading.ledger.fabric.resume_file is None
    assert reading.ledger.fabric.endpoint == settings.ledger.fabric.endpoint
    embedded = load_settings(None, env={})
    assert _without_resume_file(embedded) is embedded
