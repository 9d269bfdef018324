"""A conformance app (see the pyproject.toml next to this package)."""
