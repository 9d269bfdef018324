"""Typed configuration: ``fedchain.toml`` plus ``FEDCHAIN_<SECTION>__<FIELD>`` overrides.

:func:`load_settings` reads the TOML file, resolves relative paths in it against the file's
folder, applies environment overrides (``FEDCHAIN_LEDGER__PATH``,
``FEDCHAIN_LEDGER__FABRIC__CHANNEL``, ...; only names with a ``__`` after the prefix count, so
unrelated ``FEDCHAIN_*`` variables are ignored), then validates everything at once. Every bad
field is reported in one :class:`~fedchain.errors.ConfigError`, with its dotted path, where
it came from (a variable, or the file), a "did you mean" for a misspelt key, and what to use
instead of a key fedchain does not take (:data:`NOT_SETTINGS`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from fedchain.errors import ConfigError

__all__ = [
    "DEFAULT_PKI",
    "ENV_PREFIX",
    "NOT_SETTINGS",
    "ClientSettings",
    "FabricSettings",
    "LedgerSettings",
    "OrganizationSettings",
    "ServerSettings",
    "Settings",
    "TLSSettings",
    "load_settings",
]

ENV_PREFIX = "FEDCHAIN_"
#: The consortium folder when neither a flag nor ``[organization] pki`` names one.
DEFAULT_PKI = Path("fedchain-pki")
_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_APP_REF_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
ConfigValue = str | int | float | bool


def _check_address(value: str) -> str:
    """``host:port`` (``[v6]:port`` for IPv6) with a port in 1..65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


Address = Annotated[str, AfterValidator(_check_address)]


class _Section(BaseModel):
    """Common model policy: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class OrganizationSettings(_Section):
    """Who this process is: its organization, its identity folder and the consortium folder."""

    id: Annotated[str, Field(pattern=_ID_RE)]
    identity: Path | None = None
    pki: Path | None = None
    password_env: str | None = None  # name of the variable holding the key password


class FabricSettings(_Section):
    """How to reach a Hyperledger Fabric Gateway (used when ``ledger.backend = "fabric"``)."""

    endpoint: Address
    tls_ca: Path | None = None
    channel: str = "fedchain"
    chaincode: str = "fedchain"
    msp_id: Annotated[str, Field(pattern=_ID_RE)] | None = None
    identity: Path | None = None
    # Where to remember the last block seen, so a restarted process resumes from there.
    resume_file: Path | None = None


class LedgerSettings(_Section):
    """Which ledger backend records the rounds."""

    backend: Literal["memory", "embedded", "fabric"] = "embedded"
    path: Path = Path("fedchain-ledger.sqlite")
    #: Embedded: seconds a write waits for another process's lock before LedgerUnavailable
    #: (the runtime then retries with backoff and says so).
    busy_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    #: Embedded: this identity's signed note of the last head it saw (rollback detection,
    #: fedchain.ledger.checkpoint); default ``<path>.<org>.<name>.head`` beside the ledger.
    checkpoint: Path | None = None
    fabric: FabricSettings | None = None

    def checkpoint_for(self, org: str, name: str) -> Path:
        """Where identity ``org``/``name`` keeps its checkpoint of this (embedded) ledger."""
        return self.checkpoint or self.path.with_name(f"{self.path.name}.{org}.{name}.head")

    def describe(self) -> str:
        """Where the ledger lives, for messages: the file, or the Fabric channel and gateway."""
        if self.backend == "fabric" and self.fabric is not None:
            return (
                f"Fabric channel {self.fabric.channel!r} (chaincode {self.fabric.chaincode!r}) "
                f"via {self.fabric.endpoint}"
            )
        return str(self.path) if self.backend == "embedded" else f"in memory ({self.path})"

    @model_validator(mode="after")
    def _fabric_needs_section(self) -> LedgerSettings:
        if self.backend == "fabric" and self.fabric is None:
            raise ValueError("backend 'fabric' needs a [ledger.fabric] section with an endpoint")
        return self


class TLSSettings(_Section):
    """mTLS options. ``insecure_dev`` turns TLS off and is meant for local debugging only."""

    insecure_dev: bool = False


class ServerSettings(_Section):
    """The aggregator: where it listens, how many rounds, and which updates it selects."""

    address: Address = "127.0.0.1:9443"
    app: str | None = None
    rounds: Annotated[int, Field(ge=1)] = 3
    min_replies: Annotated[int, Field(ge=1)] = 1
    deadline_s: Annotated[float, Field(gt=0)] = 600.0
    max_payload_mb: Annotated[float, Field(gt=0)] = 256.0
    # Data-plane fairness (fedchain.transport.limits): calls one organization may hold open,
    # calls overall (default: max_calls_per_org × (organizations + 1)), and the seconds a
    # stream may move nothing before it is cut.
    max_calls_per_org: Annotated[int, Field(ge=1)] = 8
    max_calls: Annotated[int, Field(ge=1)] | None = None
    stream_idle_s: Annotated[float, Field(gt=0)] = 60.0
    selection: Literal["all", "top-k", "threshold"] = "all"
    selection_key: str = "num-examples"
    k: Annotated[int, Field(ge=1)] | None = None
    threshold: float | None = None
    secure: bool = False  # secure aggregation around the app's strategy
    max_weight: Annotated[int, Field(ge=1)] = 100_000  # largest sample count of one org

    @model_validator(mode="after")
    def _selection_parameters(self) -> ServerSettings:
        if self.selection == "top-k" and self.k is None:
            raise ValueError("selection 'top-k' needs k")
        if self.selection == "threshold" and self.threshold is None:
            raise ValueError("selection 'threshold' needs threshold")
        return self


class ClientSettings(_Section):
    """An organization's client: the aggregator's address and the Flower ClientApp to run."""

    server: Address = "127.0.0.1:9443"
    app: str | None = None  # "package.module:attr" or a directory holding the app
    node_config: dict[str, ConfigValue] = Field(default_factory=dict)
    secure: bool = False  # take part in secure aggregation when the aggregator runs it


class Settings(_Section):
    """The whole configuration of one fedchain process."""

    organization: OrganizationSettings | None = None
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    tls: TLSSettings = Field(default_factory=TLSSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    client: ClientSettings = Field(default_factory=ClientSettings)
    run_config: dict[str, ConfigValue] = Field(default_factory=dict)


#: Keys that look like settings but are not, and what does their job instead.
NOT_SETTINGS = {
    "server.hosts": "the aggregator's host names go into its TLS certificate when it is issued "
    "(fedchain pki org init --aggregator --hosts NAMES)",
    "tls.ca_bundle": "the data plane trusts exactly the TLS CAs of the consortium folder; a "
    "Fabric peer's TLS CA is ledger.fabric.tls_ca",
}


# --- loading ------------------------------------------------------------------------------


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside ``X | None`` / ``Annotated[X, ...]``."""
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [t for a in get_args(annotation) for t in _unwrap(a)]
    return [annotation]


def _field_kinds(model: type[BaseModel], name: str) -> list[Any]:
    info = model.model_fields.get(name)
    return [] if info is None else _unwrap(info.annotation)


def _submodel(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    for kind in _field_kinds(model, name):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def _resolve_paths(data: dict[str, Any], model: type[BaseModel], base: Path) -> None:
    """Make relative path values (and a directory ``app``) absolute against ``base``."""
    for name, value in data.items():
        sub = _submodel(model, name)
        if sub is not None and isinstance(value, dict):
            _resolve_paths(value, sub, base)
        elif isinstance(value, str) and _is_path_value(model, name, value):
            data[name] = str(base / Path(value).expanduser())


def _is_path_value(model: type[BaseModel], name: str, value: str) -> bool:
    """Path fields, and an ``app`` that is a directory rather than ``module:attr``."""
    if Path in _field_kinds(model, name):
        return True
    is_app = name == "app" and name in model.model_fields
    return is_app and _APP_REF_RE.fullmatch(value) is None


def _env_value(model: type[BaseModel], name: str, raw: str) -> Any:
    """Environment strings become lists/dicts for list/dict fields (JSON or comma-separated)."""
    origins = {get_origin(k) or k for k in _field_kinds(model, name)}
    if origins & {list, dict} and raw.lstrip().startswith(("[", "{")):
        try:
            return json.loads(raw)
        except ValueError:
            return raw  # let validation report it
    if list in origins:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _apply_env(
    data: dict[str, Any], env: Mapping[str, str], created: dict[str, list[str]] | None = None
) -> dict[str, str]:
    """Merge ``FEDCHAIN_A__B[__C]`` variables into ``data``; return dotted key -> variable.

    ``created`` collects, per section the file did not have (dotted path), the variables that
    made it: a section made by one variable lacks the fields the file would have given it.
    """
    sources: dict[str, str] = {}
    made = created if created is not None else {}
    for var in sorted(env):
        if not var.upper().startswith(ENV_PREFIX) or "__" not in var[len(ENV_PREFIX) :]:
            continue
        keys = [k.lower() for k in var[len(ENV_PREFIX) :].split("__")]
        model: type[BaseModel] | None = Settings
        target = data
        for depth, key in enumerate(keys[:-1], start=1):
            node, section = target.get(key), ".".join(keys[:depth])
            if not isinstance(node, dict) or section in made:
                made.setdefault(section, []).append(var)
            target[key] = node = node if isinstance(node, dict) else {}
            target = node
            model = _submodel(model, key) if model else None
        value = env[var]
        target[keys[-1]] = _env_value(model, keys[-1], value) if model else value
        sources[".".join(keys)] = var
    return sources


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(path: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The settings model of the section at ``path`` (None for a non-section)."""
    model: type[BaseModel] | None = Settings
    for key in path:
        model = _submodel(model, str(key)) if model is not None else None
    return model


def _hint(err: Any, loc: str, created: Mapping[str, list[str]]) -> str:
    """What to do about one error, beyond pydantic's message ("" when nothing to add)."""
    path = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        if loc in NOT_SETTINGS:
            return f"not a setting: {NOT_SETTINGS[loc]}"
        model = _model_at(path[:-1])
        close = difflib.get_close_matches(str(path[-1]), list(model.model_fields) if model else [])
        return f"did you mean {'.'.join([*map(str, path[:-1]), close[0]])}?" if close else ""
    section = _format_loc(path[:-1])
    if err["type"] == "missing" and section in created:
        made = ", ".join(created[section])
        var = ENV_PREFIX + "__".join(str(p).upper() for p in path)
        return (
            f"the {section} section comes only from {made}; set {var} too, or write the "
            "section in fedchain.toml"
        )
    return ""


def _format_errors(
    exc: ValidationError, sources: Mapping[str, str], created: Mapping[str, list[str]]
) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = _format_loc(tuple(err["loc"]))
        where = next((v for k, v in sources.items() if loc == k or loc.startswith(k + ".")), None)
        msg = err["msg"].removeprefix("Value error, ")
        hint = _hint(err, loc, created)
        parts.append(
            f"{loc}: {msg}" + (f" (from {where})" if where else "") + (f": {hint}" if hint else "")
        )
    return "; ".join(parts)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (if any), apply environment overrides (``os.environ`` if ``env`` is
    None), validate, and return the settings; any problem raises one ConfigError."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(path)
        _resolve_paths(data, Settings, path.absolute().parent)
    created: dict[str, list[str]] = {}
    sources = _apply_env(data, os.environ if env is None else env, created)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        label = str(path) if path is not None else "configuration"
        raise ConfigError(f"{label}: {_format_errors(exc, sources, created)}") from exc
