"""assay.log.store on a real database file (SQLite; the server tests run PostgreSQL too):
integrating in batches gives exactly the stored hashes of assay.log.merkle (and so of Go's
tlog, tests/log/test_oracle.py), the hashed size is read back from the last stored hash, and a
log with an entry missing stops integration with a message instead of looping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from assay.log import entries, merkle, store
from assay.storage.db import Database
from assay.storage.models import LogEntry, LogHash

WHEN = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _db(tmp: Path) -> Database:
    db = Database(f"sqlite:///{tmp / 'log.db'}")
    db.migrate()
    return db


def _append(db: Database, first: int, count: int) -> list[bytes]:
    out = []
    with db.write() as session:
        for i in range(first, first + count):
            entry = entries.status(f"p{i}", "active", None, when=WHEN)
            assert store.append(session, 1, entry) == i
            out.append(entries.encode(entry))
    return out


def test_integrate_in_batches_equals_the_reference_tree(tmp_path: Path) -> None:
    db = _db(tmp_path)
    reference = merkle.MemoryHashStore()
    for data in _append(db, 0, 300):
        reference.append(data)
    assert store.integrate(db, 1, batch=7) == 300
    for data in _append(db, 300, 213):  # past 512: siblings from earlier batches, level 9
        reference.append(data)
    assert store.integrate(db, 1, batch=100) == 513
    with db.read() as session:
        stored = [h for (h,) in session.execute(sa.select(LogHash.hash).order_by(LogHash.idx))]
        assert store.hashed_size(session, 1) == 513
        assert store.root_hash(session, 1, 513) == merkle.tree_hash(513, reference)
    assert stored == reference.hashes
    assert store.integrate(db, 1) == 513  # nothing to do: idempotent


def test_a_missing_entry_stops_integration(tmp_path: Path) -> None:
    db = _db(tmp_path)
    _append(db, 0, 5)
    with db.write() as session:
        session.execute(sa.delete(LogEntry).where(LogEntry.seq == 4))
    with pytest.raises(store.LogError, match="only 4 are there"):
        store.integrate(db, 1)
    db.dispose()
