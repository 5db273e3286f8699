"""Issue 11: ``project_changed`` is the one place a project's change is recorded, and its
listeners hear of a change only once it is committed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from assay.storage import counters
from assay.storage.changes import ProjectChange, on_project_changed, project_changed
from assay.storage.db import Database
from assay.storage.models import Counter, Project


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'assay.db'}")
    database.migrate()
    yield database
    database.dispose()


def _listing(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(sa.select(Counter.value).where(Counter.name == counters.projects(1))).scalar() or 0)


def test_a_change_moves_the_serial_and_the_listing_only_when_asked(db: Database) -> None:
    heard: list[ProjectChange] = []
    remove = on_project_changed(heard.append)
    try:
        with db.write() as session:
            project = Project(name="Demo", normalized_name="demo")
            session.add(project)
            project_changed(session, project, listing_changed=True)
            assert heard == []  # not before the commit
        assert heard == [ProjectChange(project.id, 1, "demo", True)]
        with db.write() as session:
            row = session.execute(sa.select(Project)).scalar_one()
            project_changed(session, row, listing_changed=False)
            assert row.serial == 3  # re-read after the UPDATE, never a stale value
        assert heard[-1] == ProjectChange(project.id, 1, "demo", False)
        assert _listing(db) == 1
    finally:
        remove()


def test_a_rolled_back_change_is_not_heard(db: Database) -> None:
    heard: list[ProjectChange] = []
    remove = on_project_changed(heard.append)
    try:

        def failing_write() -> None:
            with db.write() as session:
                project = Project(name="gone", normalized_name="gone")
                session.add(project)
                project_changed(session, project, listing_changed=True)
                raise RuntimeError("the upload failed after the change was recorded")

        with pytest.raises(RuntimeError):
            failing_write()
        with db.write() as session:
            session.add(Project(name="other", normalized_name="other"))  # no change recorded
        assert heard == []
        assert _listing(db) == 0
    finally:
        remove()


def test_a_failing_listener_does_not_undo_the_change(db: Database) -> None:
    def broken(change: ProjectChange) -> None:
        raise ValueError("a CDN that is down")

    remove = on_project_changed(broken)
    try:
        with db.write() as session:
            project = Project(name="kept", normalized_name="kept")
            session.add(project)
            project_changed(session, project, listing_changed=True)
        assert _listing(db) == 1
    finally:
        remove()
