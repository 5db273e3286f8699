"""The audit log: every write records who did it, what, when, with which token, from where;
and refused attempts that matter for security (issue 10, item 14), aggregated."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assay.storage.models import AuditEvent, utcnow

if TYPE_CHECKING:
    from assay.storage.db import Database

#: Repeats of one refusal (same source, action and reason) within this long of the row that
#: counts them add to that row instead of adding rows: a flood of bad tokens from one address
#: costs one row per window, not one per request.
REFUSAL_WINDOW = dt.timedelta(hours=1)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    project: str | None = None,
    target: str | None = None,
    token_id: str | None = None,
    remote_addr: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an event to the caller's transaction, so it commits (or not) with the change itself."""
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            project=project,
            target=target,
            token_id=token_id,
            remote_addr=remote_addr,
            details=details or {},
        )
    )


def record_refusal(
    db: Database,
    *,
    action: str,
    reason: str,
    actor: str,
    remote_addr: str | None,
    project: str | None = None,
    token_id: str | None = None,
    details: dict[str, Any] | None = None,
    times: int = 1,
    now: dt.datetime | None = None,
) -> None:
    """Record ``times`` refused attempts in a transaction of its own (the attempts rolled back).

    The row is ``action`` with ``target`` = ``reason``; its ``time`` is the first refusal of a
    window, ``details`` carry ``count`` and ``last_seen``. Within ``REFUSAL_WINDOW`` a repeat
    from the same address for the same reason only counts (whatever token, project or claims it
    carried: those vary at the caller's will, so they cannot be part of the key that bounds the
    table); the first attempt's specifics stay in the row."""
    now = now or utcnow()
    with db.write() as session:
        source = (
            AuditEvent.remote_addr.is_(None) if remote_addr is None else AuditEvent.remote_addr == remote_addr
        )
        row = session.execute(
            sa.select(AuditEvent)
            .where(
                AuditEvent.time >= now - REFUSAL_WINDOW,
                AuditEvent.action == action,
                AuditEvent.target == reason,
                source,
            )
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if row is not None:
            counted = dict(row.details or {})
            counted["count"] = int(counted.get("count", 1)) + times
            counted["last_seen"] = now.isoformat()
            row.details = counted  # a new dict: the JSON column sees the change
            return
        record(
            session,
            actor=actor,
            action=action,
            project=project,
            target=reason,
            token_id=token_id,
            remote_addr=remote_addr,
            details={**(details or {}), "count": times, "last_seen": now.isoformat()},
        )
