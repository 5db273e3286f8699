"""Issue 13, item 1: the append is in the upload's transaction. The server (two worker
processes, so appends from different processes race for the log's counter) is SIGKILLed at a
random moment during concurrent uploads, restarted, and killed again. After every restart
``fsck --grace 0`` is clean (its log check: no gap, the stored hashes recompute, every file row
has exactly one upload entry with its sha256). At the end, read back through the served tiles
checked against the signed checkpoint: every file the index serves has exactly one upload
entry, every upload answered 200 is among them, and nothing cut off by a kill is logged without
being served (or served without being logged).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import rfc8785
import sqlalchemy as sa

from assay.log import note, store
from assay.storage.models import LogEntry, LogHash
from tests.log.test_server_log import fetch_checkpoint, served_entries
from tests.reliability.conftest import env_int, fsck_clean
from tests.support.dists import make_wheel
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.upload import upload

ITERATIONS = env_int("ASSAY_LOG_CRASH_ITERATIONS", 3)
THREADS = 3
BASE_URL = "https://log.example.test/team"
JSON_V1 = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
    else:
        with fresh_database() as url:
            yield url


def _problems(server: AssayServer) -> set[str]:
    result = server.cli("fsck", "--json", "--grace", "0", check=False)
    assert result.returncode == 1
    return {p["kind"] for p in json.loads(result.stdout)["problems"]}


def _fsck_sees_disagreement(server: AssayServer, filename: str) -> None:
    """The check proves something: a second upload entry for a file, a rewritten entry (the
    stored hashes and the signed checkpoint then no longer recompute) and a flipped stored hash
    are each reported."""
    db = server.db()
    with db.write() as session:
        first = session.execute(sa.select(LogEntry).where(LogEntry.filename == filename)).scalar_one()
        store.append(session, 1, json.loads(first.data))
    assert _problems(server) == {"log-duplicate-upload"}
    with db.write() as session:
        entry = json.loads(first.data)
        entry["filename"] = "someone-else-1.0-py3-none-any.whl"
        session.execute(
            sa.update(LogEntry).where(LogEntry.seq == first.seq).values(data=rfc8785.dumps(entry))
        )
    assert _problems(server) == {"log-hashes", "log-checkpoint"}
    with db.write() as session:
        session.execute(sa.update(LogHash).where(LogHash.idx == 0).values(hash=bytes(32)))
    assert "log-hashes" in _problems(server)


def _uploader(url: str, token: str, workdir: Path, tag: str, seen: dict[str, int | None],
              lock: threading.Lock, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        n = 0
        while not stop.is_set():
            n += 1
            wheel = make_wheel(workdir, "log-crash", f"{tag}.{n}", extra_files={"log_crash/b": os.urandom(2000)})
            try:
                status: int | None = upload(http, wheel, token).status_code
            except httpx.HTTPError:
                status = None
            with lock:
                seen[wheel.name] = status
            if status is None:
                return


def test_sigkill_during_uploads_leaves_log_and_index_agreeing(tmp_path: Path, database_url: str | None) -> None:
    server = AssayServer(
        tmp_path / "data", database_url=database_url,
        args=["--workers", "2", "--base-url", BASE_URL, "--log-checkpoint-interval", "0"],
    )
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    seen: dict[str, int | None] = {}
    lock = threading.Lock()
    token = ""
    try:
        for i in range(ITERATIONS):
            server.start()
            fsck_clean(server)
            if not token:
                token = server.quick_token("log-crasher")
            workdir = tmp_path / f"iter{i}"
            workdir.mkdir()
            stop = threading.Event()
            threads = [
                threading.Thread(target=_uploader, args=(server.url, token, workdir, f"{i}.{t}", seen, lock, stop))
                for t in range(THREADS)
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.5, 2.0))
            server.kill()
            stop.set()
            for t in threads:
                t.join(60)

        server.start()
        report = fsck_clean(server)
        vkey = server.admin("log", "key", "--base-url", BASE_URL).stdout.strip()
        with server.client() as http:
            cp = fetch_checkpoint(http, note.Ed25519Verifier.from_verifier_key(vkey))
            logged = [e["filename"] for e in served_entries(http, cp) if e["kind"] == "upload"]
            page = http.get("/simple/log-crash/", headers={"Accept": JSON_V1})
            served = {f["filename"] for f in page.json()["files"]}
        accepted = {name for name, status in seen.items() if status == 200}
        cut_off = {name for name, status in seen.items() if status is None}
        assert not {name: s for name, s in seen.items() if s not in (200, None)}
        assert cut_off, "no kill landed during an upload"
        assert len(logged) == len(set(logged)), "a file was logged twice"
        assert set(logged) == served
        assert accepted <= served <= accepted | cut_off
        assert cp.size == report["log_entries"] == len(logged)
        _fsck_sees_disagreement(server, logged[0])
        print(f"\n{ITERATIONS} kills: {len(seen)} uploads, {len(accepted)} accepted, {len(cut_off)} cut off, "
              f"{len(logged)} logged")
    finally:
        server.stop()
