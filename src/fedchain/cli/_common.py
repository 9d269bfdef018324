"""Helpers shared by every fedchain command.

:func:`run_cli` turns any :class:`~fedchain.errors.FedchainError` into one line on stderr,
``error: <message>``, and exit code 1 (typer keeps exit code 2 for usage errors), so users never
see a traceback for a problem they can fix.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from fedchain.errors import ConfigError, FedchainError
from fedchain.signals import Terminated, raise_on_termination, stop_with_parent

__all__ = [
    "VersionOption",
    "configure_logging",
    "console",
    "fail",
    "package_version",
    "password_from_env",
    "run_cli",
    "split_csv",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Human output (tables, summaries) goes to stdout through rich.
console = Console(highlight=False)


def configure_logging(verbose: bool) -> None:
    """Log at INFO with ``-v``, else WARNING, and print Flower's log once.

    Flower's ``flwr`` logger has its own console handler (INFO, or ``FLWR_LOG_LEVEL``) and also
    propagates to the root logger, so with a root handler every Flower line came out twice,
    once with ANSI colours. Flower's lines now go through its own handler only, coloured only
    when stderr is a terminal (not in a log file).
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    from flwr.common.logger import update_console_handler

    logging.getLogger("flwr").propagate = False
    if not sys.stderr.isatty():
        update_console_handler(colored=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: <message>`` as one line on stderr; return the Exit to raise."""
    one_line = " ".join(message.split())
    typer.echo(f"error: {one_line}", err=True)
    return typer.Exit(code)


def run_cli(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command so fedchain errors end it with one stderr line and exit code 1;
    Ctrl-C, SIGTERM and SIGHUP end it after its cleanup, with 130, 143 and 129; so does the
    end of a parent that asked for it (``signals.PARENT_ENV``), even by SIGKILL."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        raise_on_termination()
        try:
            stop_with_parent()
            return fn(*args, **kwargs)
        except FedchainError as exc:
            raise fail(str(exc) or type(exc).__name__) from None
        except Terminated as exc:
            said = "terminated" if exc.signum == signal.SIGTERM else "hung up (SIGHUP)"
            raise fail(said, 128 + exc.signum) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


def split_csv(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; ``None`` -> ``[]``."""
    if value is None:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def password_from_env(var: str | None) -> bytes | None:
    """The key password held in environment variable ``var`` (never taken on the command line,
    where other users could read it); ``None`` when no variable is named."""
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"environment variable {var} is not set or empty (--password-env)")
    return value.encode()


def package_version() -> str:
    """The installed fedchain version (``unknown`` when run from a tree that is not installed)."""
    try:
        return metadata.version("fedchain")
    except metadata.PackageNotFoundError:
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"fedchain {package_version()}")
        raise typer.Exit()


#: ``--version`` for every console script: prints ``fedchain <version>`` and exits.
VersionOption = Annotated[
    bool,
    typer.Option(
        "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
]
