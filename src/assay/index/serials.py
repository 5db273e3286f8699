"""The read path's one database question: a project's id and change serial.

Every simple-page request asks it (the serial keys the rendered-page cache, and reading it from
the shared database is what lets every worker see a change at once), so it must cost close to
nothing. On SQLite it runs on a plain ``sqlite3`` connection per thread, on the event loop
itself: an indexed lookup in a local file takes microseconds, less than handing the request to
a thread. On PostgreSQL it is one prebuilt Core statement, run in the thread pool (a network
round trip must not block the loop).
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Protocol

import sqlalchemy as sa

from assay.storage import counters
from assay.storage.db import Database
from assay.storage.models import Counter, Project

_PROJECT = sa.select(Project.id, Project.serial).where(
    Project.index_id == sa.bindparam("index_id"), Project.normalized_name == sa.bindparam("name")
)
_INDEX = sa.select(Counter.value).where(Counter.name == sa.bindparam("counter"))


class Serials(Protocol):
    #: True when the lookups may run on the event loop.
    inline: bool

    def project(self, index_id: int, normalized_name: str) -> tuple[int, int] | None: ...
    def index(self, index_id: int) -> int: ...


class SQLiteSerials:
    inline = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit (isolation_level=None): each SELECT is its own read transaction and
            # sees every commit made before it, by any process.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True, timeout=60)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA busy_timeout = 60000")
            self._local.conn = conn
        return conn

    def project(self, index_id: int, normalized_name: str) -> tuple[int, int] | None:
        row = self._conn().execute(
            "SELECT id, serial FROM projects WHERE index_id = ? AND normalized_name = ?", (index_id, normalized_name)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def index(self, index_id: int) -> int:
        row = self._conn().execute(
            "SELECT value FROM counters WHERE name = ?", (counters.projects(index_id),)
        ).fetchone()
        return int(row[0]) if row else 0


class SQLSerials:
    inline = False

    def __init__(self, db: Database) -> None:
        self.engine = db.engine

    def project(self, index_id: int, normalized_name: str) -> tuple[int, int] | None:
        with self.engine.connect() as conn:
            row = conn.execute(_PROJECT, {"index_id": index_id, "name": normalized_name}).first()
        return (int(row[0]), int(row[1])) if row else None

    def index(self, index_id: int) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(_INDEX, {"counter": counters.projects(index_id)}).scalar()
        return int(value or 0)


def serials_for(db: Database) -> Serials:
    if db.is_sqlite:
        database = sa.engine.make_url(db.url).database
        if database and database != ":memory:":
            return SQLiteSerials(database)
    return SQLSerials(db)
