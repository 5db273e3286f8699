"""Issue 6: the reliability and security proofs. Shared pieces: how long the long-running proofs
run (environment variables: the defaults are the short CI versions, docs/reliability.md gives
the long ones), a server on either backend, and the consistency check every proof ends with."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.postgres import fresh_database
from tests.support.server import AssayServer


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


#: Kill/restart cycles per backend (item 1). CI: 5; the long run: 100.
ITERATIONS = env_int("ASSAY_RELIABILITY_ITERATIONS", 5)
#: Seconds of mixed load (item 3). CI: 15; the long run is ``bench/load/run``.
LOAD_SECONDS = env_int("ASSAY_LOAD_SECONDS", 15)
#: Examples per hypothesis fuzz target (item 4). CI: 200; the long run: 5000.
FUZZ_EXAMPLES = env_int("ASSAY_FUZZ_EXAMPLES", 200)
#: Examples per operation for schemathesis (item 4). CI: 25; the long run: 500.
API_EXAMPLES = env_int("ASSAY_API_FUZZ_EXAMPLES", 25)


def fsck_clean(server: AssayServer, *, files: int | None = None) -> dict[str, Any]:
    """Item 5: ``assay admin fsck --grace 0`` finds nothing: every row's blob and metadata file is
    there and hashes right, no blob lacks a row, no staging file is left. (Grace 0: nothing may
    be excused as "in flight"; call it when no request is.)"""
    result = server.cli("fsck", "--json", "--grace", "0", check=False)
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["problems"] == [], report
    assert result.returncode == 0
    if files is not None:
        assert report["files_checked"] == files
    return report


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite in the data directory, else a fresh PostgreSQL database (which fails the
    test loudly when PostgreSQL is not running: tests/support/postgres.py)."""
    if request.param == "sqlite":
        yield None
    else:
        with fresh_database() as url:
            yield url
