"""Shared change counters (see ``models.Counter``)."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from assay.storage.models import Counter


def projects(index_id: int) -> str:
    """The counter bumped whenever the set of an index's projects changes; it keys that index's
    cached project list."""
    return f"projects:{index_id}"


def bump(session: Session, name: str) -> None:
    """Increment a counter inside the caller's transaction, creating it at 1 if it is new.

    One ``INSERT ... ON CONFLICT (name) DO UPDATE SET value = value + 1`` (PostgreSQL 9.5+ and
    SQLite 3.24+ spell it alike). The UPDATE-then-INSERT it replaces raced on a counter's first
    bump: on PostgreSQL two transactions that both found no row both inserted, and the second
    failed on the primary key once the first committed (an admin's ``project create`` reported
    "already exists"; tests/reliability/test_races.py). The upsert waits for the other
    transaction's row and increments it instead."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(Counter).values(name=name, value=1)
    session.execute(
        statement.on_conflict_do_update(index_elements=[Counter.name], set_={"value": Counter.value + 1})
    )
