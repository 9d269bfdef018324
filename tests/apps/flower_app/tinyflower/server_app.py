"""The ServerApp component named in ``pyproject.toml``."""

from tests.apps.tiny import server_app as app

__all__ = ["app"]
