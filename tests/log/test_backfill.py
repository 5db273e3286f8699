"""An index upgraded from before the log (issue 13): its files get logged by `assay admin log backfill`.

The database is a real pre-log one: a server stores a file, the schema is taken back to
revision 0004 (Alembic's own downgrade, which drops the log's tables), and the next start
migrates it forward again with an empty log, as an upgrade of an older release would.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from alembic import command

from tests.support.dists import make_wheel
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.upload import upload


def _fsck(server: AssayServer) -> list[str]:
    result = server.admin("fsck", check=False)
    return [line for line in result.stdout.splitlines() if line.startswith("log-")]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_files_from_before_the_log_are_logged_by_backfill(backend: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if backend == "postgresql" else None
        _upgrade_and_backfill(AssayServer(tmp_path / "data", database_url=url), tmp_path)


def _upgrade_and_backfill(server: AssayServer, tmp_path: Path) -> None:
    server.start()
    try:
        token = server.quick_token("backfill-alice")
        with server.client() as http:
            for version in ("1.0", "1.1"):
                assert upload(http, make_wheel(tmp_path, "oldproj", version), token).status_code == 200
    finally:
        server.stop()

    db = server.db()
    with db.engine.connect() as connection:
        if db.is_sqlite:
            # As Database.migrate runs migrations: batch copies must not cascade (0006).
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        command.downgrade(db._alembic_config(connection), "0004")
        connection.commit()
        connection.invalidate()
    db.dispose()

    server.start()
    try:
        missing = _fsck(server)
        assert len(missing) == 2, missing
        assert all(line.startswith("log-missing-upload") for line in missing), missing
        assert "assay admin log backfill" in missing[0]

        out = server.admin("log", "backfill").stdout
        assert "2 file(s) logged" in out, out
        assert _fsck(server) == []
        # Twice adds nothing.
        assert "0 file(s) logged" in server.admin("log", "backfill").stdout

        with server.client() as http:
            bundle = http.get("/log/tile/entries/000.p/2")
            assert bundle.status_code == 200, bundle.text
        data = bundle.content
        entries = []
        while data:
            length = int.from_bytes(data[:2], "big")
            entries.append(json.loads(data[2 : 2 + length]))
            data = data[2 + length :]
        assert [e["filename"] for e in entries] == [
            "oldproj-1.0-py3-none-any.whl",
            "oldproj-1.1-py3-none-any.whl",
        ]
        assert all(e["kind"] == "upload" and "recorded" in e for e in entries), entries
    finally:
        server.stop()
