"""Issue 6, item 2: races between server processes sharing one database and one blob store.

Uploads of one filename sent at the same instant to two ``assay serve`` processes (and to one
``--workers 2`` server): with the same bytes every client is told 200 and exactly one of them
created the file (the others hear "already present", PyPI's idempotent re-upload); with
different bytes exactly one wins and every other gets 400 "File already exists". The index
then serves the winner's bytes, and fsck finds nothing else on disk.

Replaying one OIDC token concurrently across two processes (exactly one upload token minted) is
``tests/publishing/test_attacks.py::test_replay_across_two_server_processes`` (both backends);
``test_mint_replay_across_workers`` below adds the ``--workers 2`` variant on PostgreSQL.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
import sqlalchemy as sa

from assay.storage import counters
from assay.storage.changes import project_changed
from assay.storage.db import Database
from assay.storage.models import Counter, Project
from tests.reliability.conftest import fsck_clean
from tests.support.dists import make_wheel
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.upload import upload

#: Several workers need the names clients use (issue 16: no URL from an unchecked Host header).
TWO_WORKERS = ["--workers", "2", "--allowed-host", "127.0.0.1"]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
#: Clients per race, split over the processes; rounds per kind of race.
CLIENTS = 6
ROUNDS = 2


@pytest.fixture
def two_servers(tmp_path: Path, database_url: str | None) -> Iterator[tuple[AssayServer, AssayServer]]:
    data = tmp_path / "data"
    first = AssayServer(data, database_url=database_url).start()
    second = AssayServer(data, database_url=database_url).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def _race(urls: list[str], token: str, files: list[Path]) -> list[httpx.Response]:
    """Upload ``files[i]`` to ``urls[i % len(urls)]``, all released at once."""
    barrier = threading.Barrier(len(files))

    def go(i: int) -> httpx.Response:
        with httpx.Client(base_url=urls[i % len(urls)], timeout=120) as http:
            barrier.wait()
            return upload(http, files[i], token)

    with concurrent.futures.ThreadPoolExecutor(len(files)) as pool:
        return list(pool.map(go, range(len(files))))


def _served(url: str, project: str) -> dict[str, bytes]:
    with httpx.Client(timeout=60) as http:
        page_url = f"{url}/simple/{project}/"
        files = http.get(page_url, headers={"Accept": JSON_V1}).json()["files"]
        return {f["filename"]: http.get(urljoin(page_url, f["url"])).content for f in files}


def _identical_and_different(urls: list[str], token: str, tmp_path: Path) -> int:
    """Both kinds of race, ROUNDS times each; returns how many files the index should hold."""
    stored = 0
    for round_ in range(ROUNDS):
        # Same filename, same bytes.
        wheel = make_wheel(tmp_path, "raced", f"1.{round_}")
        responses = _race(urls, token, [wheel] * CLIENTS)
        assert [r.status_code for r in responses] == [200] * CLIENTS, [r.text for r in responses]
        created = [r for r in responses if "already present" not in r.text]
        assert len(created) == 1, [r.text for r in responses]
        stored += 1

        # Same filename, different bytes.
        variants = []
        for i in range(CLIENTS):
            directory = tmp_path / f"r{round_}v{i}"
            directory.mkdir()
            variants.append(
                make_wheel(directory, "raced", f"2.{round_}", extra_files={"raced/variant": str(i).encode()})
            )
        responses = _race(urls, token, variants)
        winners = [v for v, r in zip(variants, responses, strict=True) if r.status_code == 200]
        assert len(winners) == 1, [(r.status_code, r.text) for r in responses]
        for r in responses:
            if r.status_code != 200:
                assert r.status_code == 400, r.text
                assert "File already exists" in r.text
        stored += 1
        # Every process serves the winner's bytes (the same database, the same store).
        for url in urls:
            served = _served(url, "raced")
            assert served[wheel.name] == wheel.read_bytes()
            assert served[winners[0].name] == winners[0].read_bytes()
    return stored


def test_upload_races_across_two_processes(two_servers: tuple[AssayServer, AssayServer], tmp_path: Path) -> None:
    first, second = two_servers
    token = first.quick_token("racer")
    stored = _identical_and_different([first.url, second.url], token, tmp_path)
    assert len(_served(second.url, "raced")) == stored
    # Losers left nothing: each stored wheel has exactly its file and metadata blob.
    assert len(first.stored_files()) == 2 * stored
    fsck_clean(first, files=stored)


def test_upload_races_across_workers(tmp_path: Path) -> None:
    """One server, two worker processes (uvicorn's --workers), PostgreSQL: the deployment the
    design recommends. The kernel spreads the clients' connections over both workers."""
    with fresh_database() as url:
        server = AssayServer(tmp_path / "data", database_url=url, args=TWO_WORKERS).start()
        try:
            token = server.quick_token("racer")
            stored = _identical_and_different([server.url], token, tmp_path)
            pids = {line.split("[", 2)[1].split("]")[0] for line in server.access_log() if "POST /legacy/" in line}
            assert len(pids) == 2, "the uploads did not reach both workers"
            fsck_clean(server, files=stored)
        finally:
            server.stop()


def test_mint_replay_across_workers(tmp_path: Path) -> None:
    """One OIDC token sent to a ``--workers 2`` server by several clients at once: exactly one
    upload token is minted, every other request is refused as a replay (PyPI's
    invalid-reuse-token), whichever worker answers it."""
    with OIDCProvider() as idp, fresh_database() as url:
        server = AssayServer(tmp_path / "data", database_url=url, args=TWO_WORKERS).start()
        try:
            server.cli("issuer", "add", "--issuer", idp.issuer)
            server.quick_user("owner")
            server.cli("project", "create", "replayed", "--owner", "owner")
            server.cli(
                "publisher", "add", "github", "--project", "replayed", "--issuer", idp.issuer,
                "--repository", "acme/replayed", "--workflow", "release.yml",
            )
            for _ in range(6):
                jwt = idp.token("assay", github_claims("acme/replayed"))
                barrier = threading.Barrier(4)

                def mint(_: int, jwt: str = jwt, barrier: threading.Barrier = barrier) -> httpx.Response:
                    with httpx.Client(base_url=server.url, timeout=60) as http:
                        barrier.wait()
                        return http.post("/_/oidc/mint-token", json={"token": jwt})

                with concurrent.futures.ThreadPoolExecutor(4) as pool:
                    results = list(pool.map(mint, range(4)))
                assert sorted(r.status_code for r in results) == [200, 422, 422, 422], [r.text for r in results]
                refused = {r.json()["errors"][0]["code"] for r in results if r.status_code == 422}
                assert refused == {"invalid-reuse-token"}, [r.text for r in results]
            pids = {
                line.split("[", 2)[1].split("]")[0] for line in server.access_log() if "/_/oidc/mint-token" in line
            }
            assert len(pids) == 2, "the requests did not reach both workers"
            fsck_clean(server)
        finally:
            server.stop()


def _database(tmp_path: Path, database_url: str | None) -> Database:
    db = Database(database_url or f"sqlite:///{tmp_path / 'assay.db'}")
    db.migrate()
    return db


def test_first_projects_created_concurrently_both_count(tmp_path: Path, database_url: str | None) -> None:
    """Issue 11: the project-list counter's first bump raced. Both transactions found no
    ``projects`` row and both inserted it; on PostgreSQL the second insert waited for the first
    transaction and then failed on the primary key (so the first two projects of a fresh index,
    created at once, cost one of them its upload or made ``assay admin project create`` say
    "already exists"). ``project_changed`` now upserts: both commit and the counter is 2. The
    first transaction is held open until the second is blocked on its row, so the interleaving
    is the racy one every time (SQLite serialises writers, so there it can only pass)."""
    db = _database(tmp_path, database_url)
    first_bumped = threading.Event()
    errors: list[BaseException] = []

    def create(name: str, *, hold: bool) -> None:
        try:
            if not hold:
                assert first_bumped.wait(30)
            with db.write() as session:
                project = Project(name=name, normalized_name=name)
                session.add(project)
                session.flush()
                project_changed(session, project, listing_changed=True)
                if hold:
                    first_bumped.set()
                    time.sleep(1.0)  # the other transaction reaches the counter and waits for ours
        except BaseException as exc:
            errors.append(exc)
            first_bumped.set()

    threads = [
        threading.Thread(target=create, args=("first",), kwargs={"hold": True}),
        threading.Thread(target=create, args=("second",), kwargs={"hold": False}),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        with db.read() as session:
            assert session.execute(sa.select(Counter.value).where(Counter.name == counters.projects(1))).scalar() == 2
            rows = session.execute(sa.select(Project.normalized_name, Project.serial))
            serials = {name: serial for name, serial in rows}
        assert serials == {"first": 2, "second": 2}
    finally:
        db.dispose()
