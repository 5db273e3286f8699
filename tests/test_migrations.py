"""The migrations and the models agree, on both backends."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from assay.storage.db import HEAD_REVISION, Database
from assay.storage.models import Base
from tests.support.postgres import fresh_database


def test_head_revision_constant_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", "assay.storage:migrations")
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def _diff(url: str) -> list[object]:
    db = Database(url)
    db.migrate()
    assert db.current_revision() == HEAD_REVISION
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff: list[object] = compare_metadata(context, Base.metadata)
    db.dispose()
    return diff


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrated_schema_matches_the_models(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        assert _diff(f"sqlite:///{tmp_path / 'schema.db'}") == []
    else:
        with fresh_database() as url:
            assert _diff(url) == []


def test_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'twice.db'}")
    db.migrate()
    with db.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    db.migrate()
    with db.engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) == tables
    assert {"files", "projects", "used_jtis", "alembic_version"} <= tables


def _upgrade_to(url: str, revision: str) -> None:
    """A database as the release before indexes made it: the same migrations, stopped at
    ``revision`` (foreign keys off on SQLite, as ``Database.migrate`` runs them)."""
    from alembic import command

    db = Database(url)
    with db.engine.connect() as conn:
        if db.is_sqlite:
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        config = Config()
        config.set_main_option("script_location", "assay.storage:migrations")
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()
    db.dispose()


_SINGLE_INDEX_ROWS = [
    "INSERT INTO users (id, username, created) VALUES (1, 'alice', CURRENT_TIMESTAMP)",
    "INSERT INTO projects (id, name, normalized_name, created, status, serial) "
    "VALUES (1, 'Demo', 'demo', CURRENT_TIMESTAMP, 'active', 7)",
    "INSERT INTO roles (project_id, user_id, role) VALUES (1, 1, 'owner')",
    "INSERT INTO releases (id, project_id, version, canonical_version, created, yanked, core_metadata) "
    "VALUES (1, 1, '1.0', '1', CURRENT_TIMESTAMP, false, '{}')",
    "INSERT INTO files (id, release_id, project_id, filename, packagetype, python_version, size, sha256, "
    "blake2_256, md5, upload_time, blob_key) VALUES (1, 1, 1, 'demo-1.0.tar.gz', 'sdist', 'source', 3, "
    "'aa', 'bb', 'cc', CURRENT_TIMESTAMP, 'aa/demo-1.0.tar.gz')",
    "INSERT INTO used_filenames (filename) VALUES ('demo-1.0.tar.gz')",
    "INSERT INTO api_tokens (id, secret_sha256, kind, user_id, description, created, single_use) "
    "VALUES ('0123456789abcdef', 'x', 'user', 1, '', CURRENT_TIMESTAMP, false)",
    "INSERT INTO publishers (id, kind, issuer_url, config, lookup_key, match_key, created) "
    "VALUES (1, 'github', 'https://issuer.test', '{}', 'github|k', 'k', CURRENT_TIMESTAMP)",
    "INSERT INTO publisher_projects (publisher_id, project_id) VALUES (1, 1)",
    "INSERT INTO counters (name, value) VALUES ('projects', 4)",
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_single_index_database_moves_into_the_default_index(backend: str, tmp_path: Path) -> None:
    """Issue 11, part 3: a database made before indexes existed keeps every row, now in the
    default index; and the per-index rules replace the global ones."""
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else stack.enter_context(fresh_database())
        _upgrade_to(url, "0005")
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            for statement in _SINGLE_INDEX_ROWS:
                conn.exec_driver_sql(statement)
        engine.dispose()

        db = Database(url)
        db.migrate()
        with db.engine.begin() as conn:
            q = conn.exec_driver_sql
            assert q("SELECT id, name FROM indexes").all() == [(1, "default")]
            # Nothing lost: the releases and files survived the copy of ``projects``.
            assert q("SELECT index_id, normalized_name, serial FROM projects").all() == [(1, "demo", 7)]
            assert q("SELECT count(*) FROM releases").scalar() == 1
            assert q("SELECT index_id, filename FROM files").all() == [(1, "demo-1.0.tar.gz")]
            assert q("SELECT index_id, filename FROM used_filenames").all() == [(1, "demo-1.0.tar.gz")]
            assert q("SELECT index_id FROM api_tokens").all() == [(1,)]
            assert q("SELECT index_id FROM publishers").all() == [(1,)]
            assert q("SELECT count(*) FROM roles").scalar() == 1
            assert q("SELECT count(*) FROM publisher_projects").scalar() == 1
            assert q("SELECT name, value FROM counters").all() == [("projects:1", 4)]
            # A second index gets the next id, and may hold a project of the same name.
            q("INSERT INTO indexes (name, description, created) VALUES ('team', '', CURRENT_TIMESTAMP)")
            team = q("SELECT id FROM indexes WHERE name = 'team'").scalar()
            assert team == 2
            q(
                "INSERT INTO projects (id, index_id, name, normalized_name, created, status, serial) "
                "VALUES (2, 2, 'demo', 'demo', CURRENT_TIMESTAMP, 'active', 1)"
            )
        # ... but not twice in one index.
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO projects (id, index_id, name, normalized_name, created, status, serial) "
                "VALUES (3, 1, 'demo', 'demo', CURRENT_TIMESTAMP, 'active', 1)"
            )
        # PyPI's one-sdist-per-release rule survived the table copy (a partial unique index).
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO files (id, release_id, project_id, filename, packagetype, python_version, size, "
                "sha256, blake2_256, md5, upload_time, blob_key) VALUES (2, 1, 1, 'demo-1.0.zip', 'sdist', "
                "'source', 3, 'dd', 'bb', 'cc', CURRENT_TIMESTAMP, 'dd/demo-1.0.zip')"
            )
        db.dispose()
