"""Options and error handling shared by the server-side commands."""

from __future__ import annotations

import functools
import getpass
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import click
import sqlalchemy as sa

from assay.admin import AdminError
from assay.cli.lazy import LazyGroup
from assay.config import ConfigError, Settings, load_settings
from assay.storage.db import Database, DatabaseError

P = ParamSpec("P")
R = TypeVar("R")


def storage_options(func: Callable[P, R]) -> Callable[P, R]:
    """--config, --data-dir, --database-url, --blob-store and --s3-endpoint-url: enough to reach
    an index's storage."""
    func = click.option(
        "--s3-endpoint-url",
        help="URL of the S3-compatible endpoint of an s3:// blob store (default: AWS_ENDPOINT_URL, "
        "else AWS). Env: ASSAY_S3_ENDPOINT_URL.",
    )(func)
    func = click.option(
        "--blob-store",
        help="Where files live: empty for <data-dir>/files (default), or s3://bucket/prefix "
        "(credentials and region from the AWS_* environment variables). Env: ASSAY_BLOB_STORE.",
    )(func)
    func = click.option(
        "--database-url",
        envvar=None,
        help="SQLAlchemy URL (default: SQLite in the data directory). Env: ASSAY_DATABASE_URL.",
    )(func)
    func = click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Where files and the SQLite database live (default ./assay-data). Env: ASSAY_DATA_DIR. "
        "assay admin uses only an existing one (create it with assay admin init or assay serve).",
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
    """Connect and bring the schema up to date."""
    try:
        db = Database(settings.resolved_database_url)
        db.migrate()
    except DatabaseError as exc:
        raise CommandError(str(exc)) from None
    return db


def admin_actor() -> str:
    try:
        return f"admin:{getpass.getuser()}"
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return "admin:unknown"


class CommandError(click.ClickException):
    """A failure the operator can act on: one line on stderr, ``assay: error: ...``, exit 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"assay: error: {self.format_message()}", err=True, file=file)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def as_command_error(exc: BaseException) -> click.ClickException | None:
    """The one-line error an expected failure becomes (None: a bug, let its traceback show).

    Expected are the admin layer's refusals, an unusable setting or database URL, and any I/O
    or database failure (a full disk, a read-only or missing file, a database that went away):
    issue 10, item 13 (``assay admin token create`` on a full disk printed a traceback)."""
    if isinstance(exc, AdminError | DatabaseError):
        return CommandError(str(exc))
    if isinstance(exc, ConfigError):
        return click.UsageError(str(exc))
    if isinstance(exc, sa.exc.DBAPIError):
        # The driver's message ("database or disk is full"), not SQLAlchemy's, which quotes the
        # statement and its parameters (a token's hash among them).
        return CommandError(_one_line(f"database error: {exc.orig}"))
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return CommandError(_one_line(f"database error: {exc}"))
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):  # click handles EPIPE
        return CommandError(_one_line(str(exc)))
    return None


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one-line messages (exit 1) instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            mapped = as_command_error(exc)
            if mapped is None:
                raise
            raise mapped from None

    return wrapper


class FriendlyGroup(LazyGroup):
    """A group whose every subcommand (lazily loaded ones and any added later too) answers
    expected failures with one line and exit status 1 (``as_command_error``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            mapped = as_command_error(exc)
            if mapped is None:
                raise
            raise mapped from None
