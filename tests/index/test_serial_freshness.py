"""Pages without a database round trip, still fresh (issue 17, item 2).

A server keeps the project serials it has read (``assay.index.serials``) and learns that one is
stale without asking the database per request: on SQLite from the wal-index header in shared
memory (exact: any commit, by any process, is seen by the next request), on PostgreSQL from
``LISTEN``/``NOTIFY`` with a bound (``serial_poll_seconds``) for a change announced to nobody.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from assay.admin import projects
from assay.index.serials import SQLiteSerials, SQLSerials, project_serial
from assay.storage.db import Database
from assay.storage.models import DEFAULT_INDEX_ID
from tests.support.dists import make_wheel
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.upload import upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def _versions(url: str, name: str) -> list[str]:
    r = httpx.get(f"{url}/simple/{name}/", headers={"Accept": JSON_V1}, timeout=30)
    assert r.status_code == 200, r.text
    return sorted(r.json()["versions"])


def _yanked(url: str, name: str) -> list[object]:
    r = httpx.get(f"{url}/simple/{name}/", headers={"Accept": JSON_V1}, timeout=30)
    return [f.get("yanked", False) for f in r.json()["files"]]


def _publish(server: AssayServer, token: str, tmp: Path, name: str, version: str) -> None:
    with server.client() as c:
        r = upload(c, make_wheel(tmp, name, version), token)
    assert r.status_code == 200, r.text


# -- SQLite --


def test_sqlite_unchanged_database_costs_no_statement(sqlite_index: AssayServer, tmp_path: Path) -> None:
    """The lookup of an unchanged database runs no SQL at all; any commit by another
    connection (here: another process's upload) is seen by the very next lookup."""
    token = sqlite_index.quick_token("fresh-owner")
    _publish(sqlite_index, token, tmp_path, "fresh-sqlite", "1.0")
    serials = SQLiteSerials(str(sqlite_index.data_dir / "assay.db"))
    statements: list[str] = []
    serials._conn().set_trace_callback(statements.append)

    async def lookups(n: int) -> list[tuple[int, int] | None]:
        return [await project_serial(serials, 1, "fresh-sqlite") for _ in range(n)]

    first = asyncio.run(lookups(1))[0]
    assert first is not None
    statements.clear()
    assert asyncio.run(lookups(50)) == [first] * 50
    assert statements == []  # before issue 17: one SELECT per lookup
    _publish(sqlite_index, token, tmp_path, "fresh-sqlite", "2.0")
    after = asyncio.run(lookups(1))[0]
    assert after is not None
    assert after[1] > first[1]
    serials.close()


def test_sqlite_change_by_another_process_is_visible_to_the_next_request(
    sqlite_index: AssayServer, tmp_path: Path
) -> None:
    token = sqlite_index.quick_token("fresh-owner")
    _publish(sqlite_index, token, tmp_path, "fresh-sqlite-2", "1.0")
    assert _yanked(sqlite_index.url, "fresh-sqlite-2") == [False]
    # Another process commits (the admin functions, on their own connection): no NOTIFY, no
    # hook in the server; its next request must see it all the same.
    projects.yank(sqlite_index.db(), "fresh-sqlite-2", "1.0", "broken", actor="admin:tests")
    assert _yanked(sqlite_index.url, "fresh-sqlite-2") == ["broken"]
    # And a raw commit that touches no project at all only costs a re-read.
    with sqlite3.connect(sqlite_index.data_dir / "assay.db") as conn:
        conn.execute("UPDATE counters SET value = value WHERE 0")
    assert _yanked(sqlite_index.url, "fresh-sqlite-2") == ["broken"]


# -- PostgreSQL: two servers on one database --

BOUND = 4


@pytest.fixture(scope="module")
def pg_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AssayServer, AssayServer, str]]:
    data = tmp_path_factory.mktemp("pg-pair")
    args = ["--serial-poll-seconds", str(BOUND)]
    with fresh_database() as url:
        first = AssayServer(data, database_url=url, args=args).start()
        second = AssayServer(data, database_url=url, args=args).start()
        try:
            yield first, second, url
        finally:
            first.stop()
            second.stop()


def _wait_listening(url: str, count: int) -> None:
    """Until ``count`` connections LISTEN (each server opens one with its first lookup)."""
    plain = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    deadline = time.monotonic() + 20
    with psycopg.connect(plain, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.1)
    raise AssertionError("the servers do not LISTEN")


def test_postgresql_change_on_one_server_reaches_the_other_by_notify(
    pg_pair: tuple[AssayServer, AssayServer, str], tmp_path: Path
) -> None:
    first, second, url = pg_pair
    token = first.quick_token("pair-owner")
    _publish(first, token, tmp_path, "pair-notify", "1.0")
    assert _versions(first.url, "pair-notify") == ["1.0"]
    assert _versions(second.url, "pair-notify") == ["1.0"]  # kept by the second server now
    _wait_listening(url, 2)
    _publish(first, token, tmp_path, "pair-notify", "2.0")
    # The same server: its very next request.
    assert _versions(first.url, "pair-notify") == ["1.0", "2.0"]
    # The other: by NOTIFY, long before the bound.
    started = time.monotonic()
    while _versions(second.url, "pair-notify") != ["1.0", "2.0"]:
        assert time.monotonic() - started < BOUND / 2, "the NOTIFY did not arrive"
        time.sleep(0.02)


def test_postgresql_unannounced_change_is_served_stale_at_most_the_bound(
    pg_pair: tuple[AssayServer, AssayServer, str], tmp_path: Path
) -> None:
    """A change that sends no NOTIFY (made by hand in SQL): the kept serial is used (no query
    per request) and trusted for at most ``serial_poll_seconds``."""
    first, second, url = pg_pair
    token = first.quick_token("pair-owner")
    _publish(first, token, tmp_path, "pair-bound", "1.0")
    _wait_listening(url, 2)
    assert _yanked(second.url, "pair-bound") == [False]
    kept_at = time.monotonic()
    plain = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "UPDATE releases SET yanked = true, yanked_reason = 'by hand' WHERE project_id = "
            "(SELECT id FROM projects WHERE normalized_name = 'pair-bound')"
        )
        conn.execute("UPDATE projects SET serial = serial + 1 WHERE normalized_name = 'pair-bound'")
    # Within the bound the kept serial answers (before issue 17 every request asked: fresh).
    assert _yanked(second.url, "pair-bound") == [False]
    assert time.monotonic() - kept_at < BOUND, "too slow to observe the kept serial"
    while _yanked(second.url, "pair-bound") != ["by hand"]:
        assert time.monotonic() - kept_at < BOUND + 2, "stale beyond serial_poll_seconds"
        time.sleep(0.1)
    # Not necessarily the whole bound: the serials a server uses are re-read every half bound
    # (the test below counts those statements: none per request).


def test_postgresql_used_serials_are_reread_in_one_statement_per_half_bound(
    pg_pair: tuple[AssayServer, AssayServer, str], tmp_path: Path
) -> None:
    """Issue 17: a busy server keeps the serials it uses fresh with one statement per half
    bound (``SQLSerials._reread_forever``), not one query per project each time an answer
    reaches the bound; and an unannounced change is still seen within the bound."""
    first, _, url = pg_pair
    token = first.quick_token("pair-owner")
    names = [f"reread-{i}" for i in range(8)]
    for name in names:
        _publish(first, token, tmp_path, name, "1.0")
    db = Database(url)
    statements: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    bound = 1.0

    async def scenario() -> float:
        serials = SQLSerials(db, bound, listen=True)
        try:
            await project_serial(serials, DEFAULT_INDEX_ID, names[0])  # starts the listener
            while not serials._listener or not serials._listener.up:
                await asyncio.sleep(0.05)
            heads = {n: await project_serial(serials, DEFAULT_INDEX_ID, n) for n in names}
            statements.clear()
            started = time.monotonic()
            while time.monotonic() - started < 3 * bound:
                for n in names:
                    assert await project_serial(serials, DEFAULT_INDEX_ID, n) == heads[n]
                await asyncio.sleep(0.02)
            reads = [q for q in statements if "FROM projects" in q]
            # One per half bound (about 6), where one per project per bound was 8 x 3 = 24.
            assert 0 < len(reads) <= 10, reads
            with db.engine.begin() as conn:  # by hand: no NOTIFY
                conn.execute(sa.text("UPDATE projects SET serial = serial + 1 WHERE normalized_name = 'reread-0'"))
            changed = time.monotonic()
            while await project_serial(serials, DEFAULT_INDEX_ID, "reread-0") == heads["reread-0"]:
                await asyncio.sleep(0.02)
            return time.monotonic() - changed
        finally:
            serials.close()

    try:
        seen_after = asyncio.run(scenario())
    finally:
        db.dispose()
    assert seen_after < bound + 0.5


def test_postgresql_burst_of_misses_after_idle_is_read_in_one_statement(
    pg_pair: tuple[AssayServer, AssayServer, str], tmp_path: Path
) -> None:
    """Issue 17 (p99 of pages at 50 clients): after an idle spell longer than the bound every
    kept answer has expired (no request used them: nothing re-read them). The burst that
    follows ran one query per request, each in a thread on its own pooled connection, so 50
    clients made the pool open its overflow connections (a PostgreSQL backend each) every time:
    100-400 ms of stall. The misses of the moment are now read together, on one connection; a
    miss never joins a read already under way, so a change this server commits meanwhile is
    still seen by its next request."""
    first, _, url = pg_pair
    token = first.quick_token("pair-owner")
    names = [f"burst-{i}" for i in range(10)]
    for name in names:
        _publish(first, token, tmp_path, name, "1.0")
    db = Database(url)
    statements: list[str] = []
    checkouts: list[object] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    sa.event.listen(db.engine, "checkout", lambda *a: checkouts.append(a[0]))
    bound = 1.0

    async def scenario() -> None:
        serials = SQLSerials(db, bound, listen=True)
        try:
            await project_serial(serials, DEFAULT_INDEX_ID, names[0])  # starts the listener
            while not serials._listener or not serials._listener.up:
                await asyncio.sleep(0.05)
            heads = {n: await project_serial(serials, DEFAULT_INDEX_ID, n) for n in names}
            await asyncio.sleep(bound + 0.2)  # idle: every answer expires
            statements.clear()
            checkouts.clear()
            wanted = [names[i % len(names)] for i in range(50)]  # 50 clients, 10 projects
            got = await asyncio.gather(*(project_serial(serials, DEFAULT_INDEX_ID, n) for n in wanted))
            assert got == [heads[n] for n in wanted]
            reads = [q for q in statements if "FROM projects" in q]
            assert len(reads) == 1, len(reads)  # before: 50 statements on up to 30 connections
            assert len(checkouts) == 1, len(checkouts)

            # A read under way, then this server commits a change (its hook drops the answer):
            # a lookup after that must not take the answer of the read that started before.
            await asyncio.sleep(bound + 0.2)
            statements.clear()
            earlier = asyncio.ensure_future(project_serial(serials, DEFAULT_INDEX_ID, "burst-0"))
            while serials._reading is None or serials._waiting:
                await asyncio.sleep(0)  # until the read has taken its batch
            with db.engine.begin() as conn:
                conn.execute(sa.text("UPDATE projects SET serial = serial + 1 WHERE normalized_name = 'burst-0'"))
            serials.answers.drop(("project", DEFAULT_INDEX_ID, "burst-0"))
            later = await project_serial(serials, DEFAULT_INDEX_ID, "burst-0")
            await earlier
            before = heads["burst-0"]
            assert before is not None
            assert later == (before[0], before[1] + 1)
            assert len([q for q in statements if "FROM projects" in q]) == 2
        finally:
            serials.close()

    try:
        asyncio.run(scenario())
    finally:
        db.dispose()


def test_sqlite_without_wal_falls_back_to_data_version(tmp_path: Path) -> None:
    """A database in another journal mode (a leftover -shm would never change): the change
    token is ``PRAGMA data_version``, and a commit by another connection is still seen."""
    path = tmp_path / "rollback.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("CREATE TABLE projects (id INTEGER PRIMARY KEY, index_id INT, normalized_name TEXT, serial INT)")
        conn.execute("INSERT INTO projects VALUES (7, 1, 'plain', 1)")
    (tmp_path / "rollback.db-shm").write_bytes(bytes(32768))  # stale, as a former WAL left it
    serials = SQLiteSerials(str(path))

    async def lookup() -> tuple[int, int] | None:
        return await project_serial(serials, 1, "plain")

    assert asyncio.run(lookup()) == (7, 1)
    assert asyncio.run(lookup()) == (7, 1)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE projects SET serial = 2")
    assert asyncio.run(lookup()) == (7, 2)
    serials.close()
