"""Shared change counters (see ``models.Counter``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assay.storage.models import Counter

#: Bumped whenever the set of projects changes; keys the cached project list.
PROJECTS = "projects"


def bump(session: Session, name: str) -> None:
    """Increment a counter inside the caller's transaction (the UPDATE is atomic per row)."""
    result = session.execute(sa.update(Counter).where(Counter.name == name).values(value=Counter.value + 1))
    if not result.rowcount:  # type: ignore[attr-defined]
        session.add(Counter(name=name, value=1))
