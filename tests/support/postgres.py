"""The machine's PostgreSQL for the PostgreSQL half of the suite.

``.ci/run`` starts the cluster and creates a role that may create databases; the URL of a
database that role can connect to comes from ``ASSAY_TEST_POSTGRESQL_URL``. Each server under
test gets a fresh database, dropped afterwards. If PostgreSQL is not reachable the tests that
need it fail with a message saying how to start it (they never skip).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

DEFAULT_URL = "postgresql://assay:assay@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("ASSAY_TEST_POSTGRESQL_URL", DEFAULT_URL)


def _connect() -> psycopg.Connection[tuple[object, ...]]:
    url = admin_url()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is needed for this test but {url} is not reachable ({exc}). "
            "Start it with `bash .ci/run` (which runs `pg_ctlcluster 15 main start` and creates the "
            "role) or point ASSAY_TEST_POSTGRESQL_URL at a server where the role may CREATE DATABASE.",
            pytrace=False,
        )


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database; yields its SQLAlchemy URL."""
    name = "assay_test_" + secrets.token_hex(6)
    with _connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = sa.engine.make_url(admin_url()).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with _connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
