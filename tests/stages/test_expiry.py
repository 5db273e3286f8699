"""A stage expires after ``stage_ttl`` (here 2 seconds, on SQLite and PostgreSQL): from that
moment no reader sees it (preview, ``assay release show``), it takes no more files, and the
next purge removes its rows and blobs, leaving the audit trail and its used filenames."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.dists import make_sdist, make_wheel
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.upload import basic, upload

TTL = 2


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def short(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if request.param == "postgresql" else None
        server = AssayServer(
            tmp_path_factory.mktemp(f"expiry-{request.param}"), database_url=url, args=["--stage-ttl", str(TTL)]
        ).start()
        stack.callback(server.stop)
        yield server


def test_an_expired_stage_is_gone_and_purged(short: AssayServer, unique: str, tmp_path: Path) -> None:
    short.quick_user("owner")
    short.cli("project", "create", unique, "--owner", "owner")
    short.cli("project", "set", unique, "--releases", "staged")
    token = short.quick_token("owner")
    before = set(short.stored_files())
    wheel = make_wheel(tmp_path, unique, "1.0")
    with short.client() as http:
        r = upload(http, wheel, token)
        assert r.status_code == 200, r.text
        preview = r.headers["assay-stage-preview"]
        assert httpx.get(preview).status_code == 200
        assert len(set(short.stored_files()) - before) == 2
        time.sleep(TTL + 0.5)
        # Expired: gone for every reader before any purge ran...
        assert httpx.get(preview).status_code == 404
        # ... and it takes no more files.
        r = upload(http, make_sdist(tmp_path, unique, "1.0"), token)
        assert r.status_code == 409, r.text
        assert "has expired" in r.text
        # The maintainers' API purges first: rows and blobs go.
        r = http.get(f"/_/releases/{unique}/", headers=basic(token))
        assert r.status_code == 200
        assert r.json()["stages"] == []
        assert set(short.stored_files()) == before
        # The filename stays used (PyPI never reuses one).
        r = upload(http, wheel, token)
        assert r.status_code == 400
        assert "already been used" in r.text
    events = [e for e in short.audit() if e.get("project") == unique]
    expired = [e for e in events if e["action"] == "stage:expire"]
    assert len(expired) == 1
    assert expired[0]["details"]["files"] == [wheel.name]  # type: ignore[index]
