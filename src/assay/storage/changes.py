"""One place where a project's change is recorded: ``project_changed``.

Everything a reader keys on moves here, in the writer's transaction: the project's ``serial``
(which keys the rendered-page cache, ``last_serial`` in the JSON API and the ETags) and, when
the set of projects changed, the index's ``projects:<id>`` counter (which keys its cached project list).
Uploads, yanks, status changes, removals, provenance imports, fsck quarantines, admin- and
Trusted-Publishing-created projects all call it; nothing else writes either.

It is also the one hook for what has to follow a change once it is committed: listeners
registered with ``on_project_changed`` are called after the transaction commits (never for a
rolled-back one), in the committing process. Other processes learn of a change from the
database (``assay.index.serials``: SQLite's shared-memory wal-index header; on PostgreSQL the
``NOTIFY`` on ``CHANNEL`` sent here, in the transaction, with a bounded poll as the fallback),
so a page another process cached is simply never asked for again; a listener does the extra
work of this process (dropping its kept serials and stale pages now, purging a CDN). The
transparency-log append (issue 13) belongs beside the serial update, inside the transaction,
so that a change and its log entry commit together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from assay.storage import counters
from assay.storage.models import Project

log = logging.getLogger(__name__)

#: PostgreSQL: every project change is announced on this channel (``NOTIFY``, delivered only once
#: its transaction commits), so other servers drop what they keep of it (``assay.index.serials``).
CHANNEL = "assay_project_changes"

#: Where a transaction's pending changes wait for its commit.
_PENDING = "assay.project_changes"


@dataclass(frozen=True, slots=True)
class ProjectChange:
    project_id: int
    index_id: int
    normalized_name: str
    #: True when the set of projects changed (created or removed): the project list moved too.
    listing_changed: bool


ProjectListener = Callable[[ProjectChange], None]

_listeners: list[ProjectListener] = []
_lock = threading.Lock()


def on_project_changed(listener: ProjectListener) -> Callable[[], None]:
    """Call ``listener`` after each committed project change in this process; returns a
    function that unregisters it."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def project_changed(session: Session, project: Project, *, listing_changed: bool) -> None:
    """Record, in ``session``'s transaction, that ``project`` changed: its serial moves on (one
    ``UPDATE projects SET serial = serial + 1``, atomic per row, so concurrent writers never
    lose a bump) and, with ``listing_changed``, so does the project-list counter."""
    if project in session.new:
        session.flush()  # a project added in this transaction: it needs its id
    session.execute(
        sa.update(Project).where(Project.id == project.id).values(serial=Project.serial + 1),
        execution_options={"synchronize_session": False},
    )
    # Read again on next access: another writer may have moved it since this session loaded it.
    session.expire(project, ["serial"])
    if listing_changed:
        counters.bump(session, counters.projects(project.index_id))
    change = ProjectChange(project.id, project.index_id, project.normalized_name, listing_changed)
    session.info.setdefault(_PENDING, []).append(change)
    if session.get_bind().dialect.name == "postgresql":
        # In the writer's transaction: sent at its commit, never for a rollback.
        session.execute(sa.select(sa.func.pg_notify(CHANNEL, notification(change))))


def notification(change: ProjectChange) -> str:
    """The NOTIFY payload of ``change`` (a normalized name has no spaces)."""
    return f"{change.project_id} {change.index_id} {int(change.listing_changed)} {change.normalized_name}"


def parse_notification(payload: str) -> ProjectChange | None:
    """``notification``'s inverse; None for a payload it did not write."""
    parts = payload.split(" ", 3)
    if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
        return None
    return ProjectChange(int(parts[0]), int(parts[1]), parts[3], parts[2] == "1")


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    changes: list[ProjectChange] = session.info.pop(_PENDING, [])
    if not changes:
        return
    with _lock:
        listeners = list(_listeners)
    for change in changes:
        for listener in listeners:
            try:
                listener(change)
            except Exception:  # the change is committed: a listener's failure must not undo it
                log.exception("a project-change listener failed for %s", change.normalized_name)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
