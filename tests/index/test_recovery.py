"""Start-up recovery, deterministically: the exact state a process killed between renaming a
blob into place and committing its row leaves behind, and what a restart does with it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assay.storage.blobs import HOST
from assay.storage.db import Database
from assay.storage.models import PendingBlob
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_restart_removes_what_a_killed_upload_left(tmp_path: Path, backend: str) -> None:
    if backend == "postgresql":
        with fresh_database() as url:
            _scenario(tmp_path, url)
    else:
        _scenario(tmp_path, None)


def _scenario(tmp_path: Path, database_url: str | None) -> None:
    data = tmp_path / "data"
    server = AssayServer(data, database_url=database_url)
    server.admin("init")  # create the data directory and schema, as a first start would
    db = Database(database_url or f"sqlite:///{(data / 'assay.db').resolve()}")
    files = data / "files"
    dead = _dead_pid()
    # Written with private modes, as assay writes (issue 10, item 7), so fsck below reports
    # only what recovery is meant to leave.
    umask = os.umask(0o077)

    # A blob renamed into place by a process that died before committing its row...
    orphan = "ab/cd/" + "e" * 60 + "/ghost-1.0-py3-none-any.whl"
    (files / orphan).parent.mkdir(parents=True)
    (files / orphan).write_bytes(b"half an upload")
    # ... a second one of another host, still young: it may be in flight there, so it stays ...
    elsewhere = "12/34/" + "5" * 60 + "/remote-1.0-py3-none-any.whl"
    (files / elsewhere).parent.mkdir(parents=True)
    (files / elsewhere).write_bytes(b"in flight on another host")
    # ... and the dead process's staging file.
    (files / ".staging").mkdir(parents=True, exist_ok=True)
    staging = files / ".staging" / f"{dead}@{HOST}@0123456789abcdef.part"
    staging.write_bytes(b"partial")
    os.umask(umask)
    with db.write() as session:
        session.add(PendingBlob(key=orphan, host=HOST, pid=dead))
        session.add(PendingBlob(key=elsewhere, host="another-host", pid=1, created=dt.datetime.now(dt.UTC)))
    db.dispose()

    server.start()
    try:
        assert not (files / orphan).exists()
        assert not staging.exists()
        assert (files / elsewhere).exists()
        report = json.loads(server.admin("fsck", "--json", "--grace", "0", check=False).stdout)
        # Only the other host's young, journaled blob remains unreferenced, as it should.
        assert [p["key"] for p in report["problems"]] == [elsewhere]
        with server.client() as http:
            assert http.get(f"/files/{orphan}").status_code == 404
    finally:
        server.stop()
