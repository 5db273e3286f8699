"""The migrations and the models agree, on both backends."""

from __future__ import annotations

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
