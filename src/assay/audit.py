"""The audit log: every write records who did it, what, when, with which token, from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from assay.storage.models import AuditEvent


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
