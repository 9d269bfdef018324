"""The ClientApp component named in ``pyproject.toml``."""

from tests.apps.tiny import client_app as app

__all__ = ["app"]
