"""The read path's one database question: a project's id and change serial.

Every simple-page and file request asks it (the serial keys the rendered-page cache and the
file cache), so it must cost close to nothing. Issue 17, item 2: the answers are kept in
memory, and what tells a server that one may be stale costs no query in the common case:

* SQLite (WAL): the database's shared-memory wal-index header (the ``-shm`` file, mapped read
  only), which every commit of any process rewrites before its COMMIT returns (its ``iChange``
  counter and ``mxFrame``, sqlite.org/walformat.html "The WAL-Index Header"). An unchanged
  header means no commit since the answers were read: a hit reads 96 bytes of shared memory.
  Any change at all (another table, a checkpoint) drops every answer: conservative, never
  stale. Without the mapping (not WAL, or no ``-shm`` yet), ``PRAGMA data_version``, which
  changes when another connection commits, is asked instead: one statement, no table read.
* PostgreSQL: ``LISTEN`` on the channel ``storage.changes.CHANNEL``, to which every project
  change sends a ``NOTIFY`` in its own transaction (so it arrives only once committed); the
  listening connection is read on the event loop. Changes this process commits also drop
  their answers at once, through the project-change hook (before the writer's response is
  sent). As a fallback for a notification lost with its connection, no answer is trusted
  for more than ``serial_poll_seconds`` (setting): a change made by another server is visible
  here within that bound, normally within milliseconds; 0 asks the database every time. So
  that the bound costs one query per period rather than one per project, a background task
  re-reads, every half bound and in one statement, the answers requests have used
  (``SQLSerials._reread_forever``).

A lookup that misses runs the query (on the loop for SQLite) and keeps the answer, unless an
invalidation arrived while it ran (``AnswerCache.generation``), so a slow read never
re-installs what a change just dropped. On PostgreSQL the misses of the moment are read
together, in one statement in one thread on one pooled connection (``SQLSerials.read``): after
an idle spell longer than the bound every answer has expired, and the first burst of requests
used to run one query per request, each in its own thread on its own connection; 50 clients
then made the pool open its 20 overflow connections (a PostgreSQL backend each) again and again,
which was the p99 of 100-400 ms of pages at 50 clients (docs/benchmarks.md, "PostgreSQL page
tail latency"). A miss joins only a read that has not started yet, so its answer is never read
before the request arrived (a change this server committed is seen by its next request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Final, Protocol

import sqlalchemy as sa

from assay.storage import counters
from assay.storage.changes import CHANNEL, ProjectChange, parse_notification
from assay.storage.db import Database
from assay.storage.models import Counter, Project

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

_PROJECT = sa.select(Project.id, Project.serial).where(
    Project.index_id == sa.bindparam("index_id"), Project.normalized_name == sa.bindparam("name")
)
_INDEX = sa.select(Counter.value).where(Counter.name == sa.bindparam("counter"))

ProjectHead = tuple[int, int] | None


class _Miss:
    """Not known here: ask the database."""


MISS: Final = _Miss()

#: Most answers kept; beyond, all are dropped (10,000 projects take ~2 MB).
MAX_ANSWERS = 200_000


class AnswerCache:
    """Serials by ``("project", index id, name)`` and ``("index", index id)``, each with the
    monotonic time it was read. Reads take no lock (a dict lookup is atomic); writes and
    invalidations, which may come from writer threads (the project-change hook), do."""

    def __init__(self, max_age: float | None) -> None:
        #: Seconds an answer is trusted, or None: until invalidated.
        self.max_age = max_age
        self.generation = 0
        self._data: dict[tuple[object, ...], tuple[object, float]] = {}
        self._lock = threading.Lock()
        #: Keys answered from memory since the last ``due`` (what is worth re-reading ahead).
        self._used: set[tuple[object, ...]] = set()

    def get(self, key: tuple[object, ...]) -> object:
        found = self._data.get(key)
        if found is None:
            return MISS
        value, read_at = found
        if self.max_age is not None:
            if time.monotonic() - read_at >= self.max_age:
                return MISS
            self._used.add(key)
        return value

    def due(self, age: float) -> list[tuple[object, ...]]:
        """The keys used since the last call whose answers are at least ``age`` seconds old
        (the rest stay remembered for the next call)."""
        now = time.monotonic()
        with self._lock:
            used, self._used = self._used, set()
            due = []
            for key in used:
                found = self._data.get(key)
                if found is None:
                    continue
                if now - found[1] >= age:
                    due.append(key)
                else:
                    self._used.add(key)
            return due

    def put(self, key: tuple[object, ...], value: object, generation: int, read_at: float) -> None:
        with self._lock:
            if generation != self.generation:
                return  # dropped while it was read: it may be the old value
            if len(self._data) >= MAX_ANSWERS:
                self._data.clear()
            self._data[key] = (value, read_at)

    def drop(self, *keys: tuple[object, ...]) -> None:
        with self._lock:
            self.generation += 1
            for key in keys:
                self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._data.clear()

    def forget(self, change: ProjectChange) -> None:
        keys: list[tuple[object, ...]] = [("project", change.index_id, change.normalized_name)]
        if change.listing_changed:
            keys.append(("index", change.index_id))
        self.drop(*keys)


class Serials(Protocol):
    #: Straight from the database (no kept answer), in the caller's thread.
    def project(self, index_id: int, normalized_name: str) -> ProjectHead: ...
    def index(self, index_id: int) -> int: ...
    def known(self, key: tuple[object, ...]) -> object:
        """The kept answer for ``key``, or ``MISS``; called on the event loop, costs no query."""
        ...

    async def read(self, key: tuple[object, ...]) -> object:
        """The answer for a ``("project", index id, name)`` or ``("index", index id)`` key that
        ``known`` missed, read from the database after this call and kept."""
        ...

    @property
    def answers(self) -> AnswerCache: ...
    def close(self) -> None: ...


async def project_serial(serials: Serials, index_id: int, normalized_name: str) -> ProjectHead:
    """The project's ``(id, serial)`` (None: no such project), from memory when nothing changed."""
    key = ("project", index_id, normalized_name)
    known = serials.known(key)
    if known is MISS:
        known = await serials.read(key)
    return known  # type: ignore[return-value]


async def index_serial(serials: Serials, index_id: int) -> int:
    """The index's project-list counter, from memory when nothing changed."""
    key = ("index", index_id)
    known = serials.known(key)
    if known is MISS:
        known = await serials.read(key)
    return known  # type: ignore[return-value]


class _WalHeader:
    """The two copies of the wal-index header at the start of ``<db>-shm`` (48 bytes each),
    mapped read only. ``token()`` is their bytes when both agree, else None (a writer is
    between its two writes of the header: treat as changed)."""

    SIZE = 96

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                raise OSError(f"{path} holds no wal-index header yet")
            self._map = mmap.mmap(fd, self.SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)

    def token(self) -> bytes | None:
        raw = self._map[: self.SIZE]
        return raw[:48] if raw[:48] == raw[48:] else None

    def close(self) -> None:
        self._map.close()


class SQLiteSerials:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._answers = AnswerCache(None)
        self._seen: object = None  # the change token the kept answers were read under

    @property
    def answers(self) -> AnswerCache:
        return self._answers

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit (isolation_level=None): each SELECT is its own read transaction and
            # sees every commit made before it, by any process.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True, timeout=60)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA busy_timeout = 60000")
            conn.execute("SELECT 1 FROM projects LIMIT 1").fetchall()  # opens the WAL and its -shm
            self._local.conn = conn
            self._local.header = None
            wal = conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            # Only in WAL mode does every commit rewrite the -shm header (a leftover -shm of a
            # database since switched to another journal mode would never change).
            with contextlib.suppress(OSError):
                if not wal:
                    raise OSError("not in WAL mode")  # PRAGMA data_version then
                # While this connection is open SQLite keeps the -shm file (it is removed or
                # reset only when the last connection closes), so the mapping stays valid.
                self._local.header = _WalHeader(self.path + "-shm")
        return conn

    def _change_token(self) -> object:
        conn = self._conn()
        header: _WalHeader | None = self._local.header
        if header is not None:
            return header.token()
        return ("data_version", conn.execute("PRAGMA data_version").fetchone()[0])

    def known(self, key: tuple[object, ...]) -> object:
        token = self._change_token()
        if token is None or token != self._seen:
            self._answers.clear()
            self._seen = token
            return MISS
        return self._answers.get(key)

    async def read(self, key: tuple[object, ...]) -> object:
        # On the event loop: one indexed read of a local file, cheaper than a thread hop.
        generation, read_at = self._answers.generation, time.monotonic()
        kind, index_id, *name = key
        value = self.project(int(index_id), str(name[0])) if kind == "project" else self.index(int(index_id))  # type: ignore[call-overload]
        self._answers.put(key, value, generation, read_at)
        return value

    def project(self, index_id: int, normalized_name: str) -> ProjectHead:
        row = self._conn().execute(
            "SELECT id, serial FROM projects WHERE index_id = ? AND normalized_name = ?", (index_id, normalized_name)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def index(self, index_id: int) -> int:
        row = self._conn().execute(
            "SELECT value FROM counters WHERE name = ?", (counters.projects(index_id),)
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        header: _WalHeader | None = getattr(self._local, "header", None)
        if header is not None:
            header.close()


class SQLSerials:
    """PostgreSQL (or SQLite in memory): the queries in a thread, the answers kept while the
    ``LISTEN`` connection is up (and each for at most ``max_age`` seconds)."""

    def __init__(self, db: Database, max_age: float, *, listen: bool) -> None:
        self.engine = db.engine
        self._url = db.url
        self._answers = AnswerCache(max_age)
        self._listen = listen and max_age > 0
        self._listener: _Listener | None = None
        self._rereader: asyncio.Task[None] | None = None
        #: Misses waiting for the next read, and the task reading them (one read at a time).
        self._waiting: dict[tuple[object, ...], asyncio.Future[object]] = {}
        self._reading: asyncio.Task[None] | None = None

    @property
    def answers(self) -> AnswerCache:
        return self._answers

    def known(self, key: tuple[object, ...]) -> object:
        if not self._listen:
            return MISS
        listener = self._listener
        if listener is None:
            self._listener = listener = _Listener(self._url, self._answers, self._answers.max_age or 1.0)
            self._rereader = asyncio.get_running_loop().create_task(self._reread_forever())
        if not listener.up:
            return MISS
        listener.drain()  # a notification already here is applied before this request is answered
        return self._answers.get(key)

    def project(self, index_id: int, normalized_name: str) -> ProjectHead:
        with self.engine.connect() as conn:
            row = conn.execute(_PROJECT, {"index_id": index_id, "name": normalized_name}).first()
        return (int(row[0]), int(row[1])) if row else None

    def index(self, index_id: int) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(_INDEX, {"counter": counters.projects(index_id)}).scalar()
        return int(value or 0)

    async def read(self, key: tuple[object, ...]) -> object:
        """Read with every other miss that arrives before the read starts: one statement, one
        thread, one pooled connection for a burst, instead of one of each per request. A miss
        never joins a read already under way (its snapshot may predate the request)."""
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
            # Retrieved even when every waiter was cancelled (no "never retrieved" warning).
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
        if self._reading is None:
            self._reading = asyncio.get_running_loop().create_task(self._read_waiting())
        # Shielded: a client that goes away cancels its wait, not the others' answer.
        return await asyncio.shield(future)

    async def _read_waiting(self) -> None:
        batch: dict[tuple[object, ...], asyncio.Future[object]] = {}
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                generation, read_at = self._answers.generation, time.monotonic()
                try:
                    values = await asyncio.to_thread(self._read_many, list(batch))
                except Exception as exc:  # the database away: each request answers it (503)
                    for future in batch.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for key, future in batch.items():
                    value = values.get(key)
                    self._answers.put(key, value, generation, read_at)
                    if not future.done():
                        future.set_result(value)
        finally:
            self._reading = None
            for future in [*batch.values(), *self._waiting.values()]:
                future.cancel()  # closed while reading: nothing will answer them (no-op if done)

    async def _reread_forever(self) -> None:
        """Every half ``max_age``: re-read, in one statement per kind, the kept answers that
        requests used and that are at least half ``max_age`` old, so that a busy server's
        answers never expire (one query per project and bound, in a thread, each time) while
        every answer it uses is still at most ``max_age`` old (the bound for a change announced
        to nobody). An invalidation meanwhile makes ``AnswerCache.put`` drop the whole batch."""
        max_age = self._answers.max_age or 1.0
        while True:
            await asyncio.sleep(max_age / 2)
            listener = self._listener
            if listener is None or not listener.up:
                continue
            keys = self._answers.due(max_age / 2)
            if not keys:
                continue
            generation, read_at = self._answers.generation, time.monotonic()
            try:
                values = await asyncio.to_thread(self._read_many, keys)
            except Exception as exc:  # the database away: the answers expire, requests ask
                log.warning("re-reading project serials failed: %s", exc)
                continue
            for key, value in values.items():
                self._answers.put(key, value, generation, read_at)

    def _read_many(self, keys: list[tuple[object, ...]]) -> dict[tuple[object, ...], object]:
        projects = [(int(k[1]), str(k[2])) for k in keys if k[0] == "project"]  # type: ignore[call-overload]
        indexes = [int(k[1]) for k in keys if k[0] == "index"]  # type: ignore[call-overload]
        out: dict[tuple[object, ...], object] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(projects), _BATCH):
                chunk = projects[start : start + _BATCH]
                out.update({("project", index_id, name): None for index_id, name in chunk})
                rows = conn.execute(
                    sa.select(Project.index_id, Project.normalized_name, Project.id, Project.serial).where(
                        sa.tuple_(Project.index_id, Project.normalized_name).in_(chunk)
                    )
                )
                for index_id, name, project_id, serial in rows:
                    out[("project", int(index_id), str(name))] = (int(project_id), int(serial))
            if indexes:
                names = {counters.projects(i): i for i in indexes}
                found = dict(conn.execute(sa.select(Counter.name, Counter.value).where(Counter.name.in_(names))).all())
                out.update({("index", i): int(found.get(name) or 0) for name, i in names.items()})
        return out

    def close(self) -> None:
        if self._rereader is not None:
            self._rereader.cancel()
        if self._reading is not None:
            self._reading.cancel()
        if self._listener is not None:
            self._listener.close()


#: Keys per statement of ``SQLSerials._read_many``.
_BATCH = 500


class _Listener:
    """One psycopg connection that ``LISTEN``s, read on the event loop (``add_reader``); started
    from the loop by the first lookup, connected in a thread, and reconnected after
    ``retry`` seconds when it drops (every kept answer is dropped then: notifications may have
    been missed). ``up`` is False while it is not listening: every lookup asks the database."""

    def __init__(self, url: str, answers: AnswerCache, retry: float) -> None:
        self.url = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.answers = answers
        self.retry = retry
        self.up = False
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._fd: int | None = None
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._connect())

    def _open(self) -> psycopg.Connection[tuple[object, ...]]:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    async def _connect(self) -> None:
        from psycopg import sql

        while not self._closed:
            try:
                conn: psycopg.Connection[tuple[object, ...]] = await asyncio.to_thread(self._open)
                await asyncio.to_thread(conn.execute, sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            except Exception as exc:  # psycopg.Error, OSError: the database is away; retry
                log.warning("cannot listen for project changes (%s); retrying in %gs", exc, self.retry)
                await asyncio.sleep(self.retry)
                continue
            if self.closed():  # closed while connecting
                conn.close()
                return
            self._conn = conn
            self._fd = conn.pgconn.socket
            # Answers read before LISTEN took effect may predate a change we were not told of.
            self.answers.clear()
            self._loop.add_reader(self._fd, self.drain)
            self.up = True
            return

    def closed(self) -> bool:
        return self._closed

    def drain(self) -> None:
        """Apply every notification that has arrived (no wait: reads what the socket holds)."""
        import psycopg

        conn = self._conn
        if conn is None:
            return
        pgconn = conn.pgconn
        try:
            pgconn.consume_input()
        except psycopg.OperationalError as exc:
            log.warning("lost the project-change listener (%s); reconnecting", exc)
            self._drop()
            return
        while (notify := pgconn.notifies()) is not None:
            change = parse_notification(notify.extra.decode())
            if change is None:
                self.answers.clear()
            else:
                self.answers.forget(change)

    def _drop(self) -> None:
        self.up = False
        self.answers.clear()
        if self._fd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
            self._fd = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        if not self._closed:
            self._loop.call_later(self.retry, self._reconnect)

    def _reconnect(self) -> None:
        if not self._closed:
            self._task = self._loop.create_task(self._connect())

    def close(self) -> None:
        self._closed = True
        self.up = False
        if self._fd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
            self._fd = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def serials_for(db: Database, max_age: float = 2.0) -> Serials:
    if db.is_sqlite:
        database = sa.engine.make_url(db.url).database
        if database and database != ":memory:":
            return SQLiteSerials(database)
        return SQLSerials(db, max_age, listen=False)
    return SQLSerials(db, max_age, listen=db.engine.dialect.name == "postgresql")
