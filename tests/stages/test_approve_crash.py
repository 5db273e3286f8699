"""SIGKILL during an approval: afterwards every file of the stage is live, or none is and the
stage is intact (issue 14: approval is one transaction).

On PostgreSQL the kill lands inside the approval for certain: the test holds a row lock on the
middle file of the stage (``staged_files``), which the approval reaches after writing the live
rows, so the server is killed while it waits there (an approval going live file by file would
have left the first half live). On SQLite (one writer at a time, the lock taken at
the transaction's start) the kill comes at a random moment of an approval of many files, a few
times."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from tests.stages.conftest import Maintainer
from tests.support.dists import make_wheel
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.upload import basic, upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"
FILES = 12


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AssayServer]:
    if request.param == "postgresql":
        with fresh_database() as url:
            s = AssayServer(tmp_path / "data", database_url=url).start()
            try:
                yield s
            finally:
                s.stop()
    else:
        s = AssayServer(tmp_path / "data").start()
        try:
            yield s
        finally:
            s.stop()


def _stage(server: AssayServer, project: str, version: str, tmp_path: Path) -> tuple[Maintainer, list[str]]:
    import pyotp

    name = f"{project}-owner"
    server.quick_user(name)
    server.cli("project", "create", project, "--owner", name)
    server.cli("project", "set", project, "--releases", "staged")
    totp = pyotp.parse_uri(server.cli("user", "totp", "enable", name).stdout.strip())
    assert isinstance(totp, pyotp.TOTP)
    owner = Maintainer(name, server.quick_token(name), totp)
    tmp_path.mkdir(parents=True, exist_ok=True)
    names = []
    with server.client() as http:
        for i in range(FILES):
            wheel = make_wheel(tmp_path, project, version, tag=f"cp3{i}-none-any")
            assert upload(http, wheel, owner.token).status_code == 200
            names.append(wheel.name)
    return owner, sorted(names)


def _live(server: AssayServer, project: str) -> list[str]:
    with server.client() as http:
        r = http.get(f"/simple/{project}/", headers={"Accept": JSON_V1})
    return sorted(f["filename"] for f in r.json()["files"]) if r.status_code == 200 else []


def _approve(server: AssayServer, project: str, version: str, owner: Maintainer) -> httpx.Response | None:
    try:
        with server.client() as http:
            return http.post(
                f"/_/releases/{project}/{version}/approve", headers=basic(owner.token), json={"totp": owner.code()}
            )
    except httpx.HTTPError:
        return None  # killed


def _staged_names(server: AssayServer, project: str, version: str, owner: Maintainer) -> list[str]:
    with server.client() as http:
        r = http.get(f"/_/releases/{project}/{version}/", headers=basic(owner.token))
    return sorted(f["filename"] for f in r.json()["files"]) if r.status_code == 200 else []


def test_sigkill_during_approve_leaves_all_or_nothing(server: AssayServer, tmp_path: Path) -> None:
    postgres = server.database_url is not None
    lives = 1 if postgres else 3
    for life in range(lives):
        project = f"crash-{life}"
        owner, names = _stage(server, project, "1.0", tmp_path / str(life))
        answers: list[httpx.Response | None] = []
        lock: psycopg.Connection | None = None  # type: ignore[type-arg]
        if postgres:
            url = sa.engine.make_url(server.database_url).set(drivername="postgresql")
            lock = psycopg.connect(url.render_as_string(hide_password=False))
            # The middle file's staged row: an approval that went live file by file would have
            # committed the first half before waiting here.
            lock.execute("SELECT id FROM staged_files WHERE filename = %s FOR UPDATE", (names[FILES // 2],))
        thread = threading.Thread(
            target=lambda out=answers, p=project, o=owner: out.append(_approve(server, p, "1.0", o))
        )
        thread.start()
        if postgres:
            # Wait until the approval is blocked on that row: its file rows are written.
            assert lock is not None
            deadline = time.monotonic() + 20
            waiting = 0
            while time.monotonic() < deadline and not waiting:
                with psycopg.connect(lock.info.dsn, password=lock.info.password) as probe:
                    waiting = probe.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s",
                        (lock.info.dbname,),
                    ).fetchone()[0]  # type: ignore[index]
                time.sleep(0.05)
            assert waiting, "the approval never reached the locked row"
        else:
            time.sleep(random.uniform(0.0, 0.15))
        server.kill()
        thread.join(30)
        if lock is not None:
            lock.rollback()
            lock.close()
        server.start()
        live = _live(server, project)
        answered = answers and answers[0] is not None and answers[0].status_code == 200
        if answered:
            assert live == names
        else:
            assert live in ([], names), live
            if not live:
                # Nothing went live: the stage is whole, and approving it now works.
                assert _staged_names(server, project, "1.0", owner) == names
                # The same TOTP step again: the killed attempt's use of it was rolled back.
                r = _approve(server, project, "1.0", owner)
                assert r is not None
                assert r.status_code == 200, r.text
                assert _live(server, project) == names
        if postgres:
            # The kill landed inside the transaction: nothing of it committed.
            assert not answered
            assert live == []
