"""Database connections: SQLite (the embedded default) or PostgreSQL, and schema migrations.

``Database.read()`` and ``Database.write()`` hand out sessions. On SQLite a write session starts
with ``BEGIN IMMEDIATE`` so that concurrent writers (several workers) queue on the busy timeout
instead of failing when a read lock cannot be upgraded; on PostgreSQL both are ordinary
transactions and uniqueness races surface as ``IntegrityError``, which callers retry.

Issue 10, item 11 ("a hung database hangs everything"): on PostgreSQL no wait is unbounded.
``statement_timeout`` and ``lock_timeout`` (sent as connection options) make the server give up
on a slow statement; a server that answers nothing at all (frozen, or a dead network path, where
the kernel still acknowledges every packet) is covered on the client side: a connection attempt
gives up after ``pool_timeout`` (libpq's ``connect_timeout``), and every wait for a reply after
``statement_timeout`` plus a little (``ReplyDeadlineConnection``), which closes the connection.
Waiting for a free pooled connection is bounded by ``pool_timeout`` too. Each ends in an
``OperationalError`` or the pool's ``TimeoutError``, which the web layer answers with 503
(``assay.web.errors``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from assay.storage import filelock
from assay.storage.modes import create_private_file, make_private_dirs, open_private

log = logging.getLogger(__name__)

_MIGRATION_LOCK_ID = 0x61_73_73_61  # "assa": the advisory lock key used while migrating PostgreSQL

#: The newest migration. With the schema already there, start-up reads one row and never
#: imports Alembic (most of a quarter second); tests check this equals Alembic's head.
HEAD_REVISION = "0013"


#: Defaults of the ``db_statement_timeout`` and ``db_pool_timeout`` settings, in seconds.
STATEMENT_TIMEOUT = 30.0
POOL_TIMEOUT = 10.0
#: How much longer than ``statement_timeout`` the client waits for a reply before it decides the
#: server is gone (the server's own timeout, and the error it sends, come first when it is alive).
REPLY_GRACE = 2.0


class DatabaseError(RuntimeError):
    """The database cannot be used: the message says which URL and why."""


def normalize_url(url: str) -> str:
    """Use the psycopg (v3) driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # WAL: readers never block the writer. synchronous=FULL: a commit the client was
        # told about survives a crash of the process and of the machine.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@functools.cache
def _reply_deadline_connection() -> Any:
    """``ReplyDeadlineConnection``, made on first use: psycopg is an optional dependency (the
    ``postgresql`` extra), so a SQLite-only installation never imports it. None when the
    installed psycopg's ``Connection.wait`` takes no ``timeout`` (older releases): the statement
    and pool timeouts still apply, only a server that answers nothing is then waited for."""
    import psycopg

    if "timeout" not in inspect.signature(psycopg.Connection.wait).parameters:
        log.warning(
            "psycopg %s cannot bound the wait for a reply; a hung database server will hang requests",
            psycopg.__version__,
        )
        return None

    class ReplyDeadlineConnection(psycopg.Connection[Any]):
        """A psycopg connection that waits at most ``reply_timeout`` seconds for any reply.

        psycopg funnels every wait on an established connection (a query, a commit, SQLAlchemy's
        pre-ping) through ``Connection.wait``, whose ``timeout`` raises once it expires. The query
        is then in an unknown state, so the connection is closed (psycopg does the same when a
        cancellation is not answered) and SQLAlchemy discards it from the pool."""

        reply_timeout: float | None = None

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            if timeout is None:
                timeout = self.reply_timeout
            try:
                return super().wait(gen, interval, timeout)
            except psycopg.OperationalError as exc:
                # psycopg.errors._WaitTimeout is private: recognised by the deadline having passed.
                if self.reply_timeout is None or type(exc).__name__ != "_WaitTimeout":
                    raise
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"the database did not answer within {self.reply_timeout:g} s; the connection was closed"
                ) from None

    return ReplyDeadlineConnection


def _postgresql_engine(url: str, *, statement_timeout: float, pool_timeout: float) -> Engine:
    millis = max(1, round(statement_timeout * 1000))
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=pool_timeout,
        connect_args={
            # libpq: whole seconds, at least 2 (smaller values are raised to 2).
            "connect_timeout": max(2, round(pool_timeout)),
            # The server's own limits: a statement or a lock wait longer than this is cancelled.
            "options": f"-c statement_timeout={millis} -c lock_timeout={millis}",
        },
    )
    reply_timeout = statement_timeout + REPLY_GRACE

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # SQLAlchemy's documented hook for making the DBAPI connection ourselves.
        factory = _reply_deadline_connection()
        if factory is None:
            return None  # SQLAlchemy connects as usual
        conn = factory.connect(*cargs, **cparams)
        conn.reply_timeout = reply_timeout
        return conn

    return engine


class Database:
    def __init__(
        self,
        url: str,
        *,
        statement_timeout: float = STATEMENT_TIMEOUT,
        pool_timeout: float = POOL_TIMEOUT,
    ) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        try:
            if self.is_sqlite:
                self._ensure_sqlite_dir()
                self.engine = _sqlite_engine(self.url, immediate=False)
                self.write_engine = _sqlite_engine(self.url, immediate=True)
            else:
                self.engine = _postgresql_engine(
                    self.url, statement_timeout=statement_timeout, pool_timeout=pool_timeout
                )
                self.write_engine = self.engine
        except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
            raise DatabaseError(f"cannot use database URL {self.safe_url}: {exc}") from None
        # SQLite: writers queue on a lock here instead of in SQLite's busy handler, which polls
        # with sleeps of up to 100 ms (a long tail under concurrent writes). The thread lock
        # orders this process's threads; the flock (one open file per process) orders processes
        # (workers, the admin CLI) and wakes the next writer as soon as the lock is free.
        self._write_lock = threading.RLock()
        self._write_depth = threading.local()
        self._lock_fd: int | None = None
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        try:
            return sa.engine.make_url(self.url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            return "<unparseable URL>"

    def _ensure_sqlite_dir(self) -> None:
        database = sa.engine.make_url(self.url).database
        if database and database != ":memory:":
            try:
                make_private_dirs(Path(database).parent)
                # Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the
                # database file's mode, so all three stay private whatever the umask (issue 10).
                create_private_file(Path(database))
            except OSError as exc:
                raise DatabaseError(f"cannot create the database {database}: {exc.strerror}") from None

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    def _sqlite_lock_fd(self) -> int | None:
        if self._lock_fd is None:
            database = sa.engine.make_url(self.url).database
            if not database or database == ":memory:":
                return None
            self._lock_fd = open_private(Path(database + ".write-lock"), os.O_RDWR | os.O_CREAT)
        return self._lock_fd

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits when the block ends without an exception."""
        if not self.is_sqlite:
            with self._write() as session, session.begin():
                yield session
            return
        with self._write_lock:
            # Reentrant: only the outermost write of a thread takes and releases the flock.
            depth = getattr(self._write_depth, "n", 0)
            fd = self._sqlite_lock_fd() if depth == 0 else None
            if fd is not None:
                filelock.lock(fd)
            self._write_depth.n = depth + 1
            try:
                with self._write() as session, session.begin():
                    yield session
            finally:
                self._write_depth.n = depth
                if fd is not None:
                    filelock.unlock(fd)

    def check(self) -> None:
        """Connect once, so a wrong URL is reported at start-up rather than at the first request."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except sa.exc.OperationalError as exc:
            raise DatabaseError(f"cannot connect to {self.safe_url}: {exc.orig}") from None

    # ---- migrations ----
    def _alembic_config(self, connection: sa.Connection) -> Any:
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", "assay.storage:migrations")
        cfg.attributes["connection"] = connection
        return cfg

    def migrate(self) -> None:
        """Bring the schema to the newest revision. Safe to run from several processes at once."""
        self.check()
        if self._recorded_revision() == HEAD_REVISION:
            return
        from alembic import command

        with self._migration_lock(), self.engine.connect() as conn:
            if not self.is_sqlite:
                # A migration may rewrite big tables: the per-request limits do not apply.
                conn.exec_driver_sql("SET statement_timeout = 0")
                conn.exec_driver_sql("SET lock_timeout = 0")
                dbapi: Any = conn.connection.dbapi_connection
                if hasattr(dbapi, "reply_timeout"):
                    dbapi.reply_timeout = None
            else:
                # Outside any transaction (SQLite ignores the pragma inside one): batch-mode
                # migrations copy a table and drop the old one, and with foreign keys on, the
                # drop of ``projects`` would cascade into every release and file (0006).
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            command.upgrade(self._alembic_config(conn), "head")
            conn.commit()
            conn.invalidate()  # not back into the pool with the limits lifted or foreign keys off

    def recorded_revision(self) -> str | None:
        """The schema revision recorded in the database; None when it has no assay schema."""
        return self._recorded_revision()

    def _recorded_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                value = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except sa.exc.DBAPIError:
            return None  # no schema yet
        return str(value) if value is not None else None

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.is_sqlite:
            database = sa.engine.make_url(self.url).database
            if not database or database == ":memory:":
                yield
                return
            lock_path = Path(database + ".migrate-lock")
            with os.fdopen(open_private(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a") as fh:
                filelock.lock(fh)
                try:
                    yield
                finally:
                    filelock.unlock(fh)
        else:
            with self.engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK_ID})")
                try:
                    yield
                finally:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK_ID})")
                    conn.commit()

    def dispose(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
