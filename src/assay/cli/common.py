"""Options and error handling shared by the server-side commands."""

from __future__ import annotations

import functools
import getpass
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from assay.admin import AdminError
from assay.config import ConfigError, Settings, load_settings
from assay.storage.db import Database, DatabaseError

P = ParamSpec("P")
R = TypeVar("R")


def storage_options(func: Callable[P, R]) -> Callable[P, R]:
    """--config, --data-dir and --database-url: enough to reach an index's storage."""
    func = click.option(
        "--database-url",
        envvar=None,
        help="SQLAlchemy URL (default: SQLite in the data directory). Env: ASSAY_DATABASE_URL.",
    )(func)
    func = click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Where files and the SQLite database live (default ./assay-data). Env: ASSAY_DATA_DIR.",
    )(func)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="A TOML settings file. Env: ASSAY_CONFIG.",
    )(func)


def settings_from(config_file: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(overrides, config_file=config_file)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def open_database(settings: Settings) -> Database:
    """Connect and bring the schema up to date (admin commands work on a fresh data dir)."""
    try:
        db = Database(settings.resolved_database_url)
        db.migrate()
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    return db


def admin_actor() -> str:
    try:
        return f"admin:{getpass.getuser()}"
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return "admin:unknown"


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one-line messages (exit 1) instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (AdminError, DatabaseError) as exc:
            raise click.ClickException(str(exc)) from None
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None

    return wrapper
