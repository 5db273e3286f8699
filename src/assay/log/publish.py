"""Publishing signed checkpoints (C2SP tlog-checkpoint over signed-note).

Signed on demand: a request for ``/log/checkpoint`` gets the newest stored checkpoint unless
the tree has grown since and that checkpoint is at least ``interval`` seconds old; then one is
signed for the current size and stored, so every worker (and every process sharing the
database) serves the same note, and a busy index makes at most about one signature per
interval. Ed25519 signatures are deterministic, so two workers signing the same tree at the
same moment store the very same bytes.

A stored checkpoint signed by another key or for another origin (the key was rotated, the
base URL changed) is never served: a fresh one is signed, replacing it at its size.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from assay.log import checkpoint, note, store
from assay.storage.db import Database
from assay.storage.models import LogCheckpoint, utcnow


def _signed_by(msg: bytes, signer: note.Ed25519Signer, origin: str) -> bool:
    """Whether a stored note is this key's checkpoint for this origin (format only: the
    database is the server's own; clients verify the signature)."""
    try:
        text, sigs = note.parse(msg)
        parsed = checkpoint.Checkpoint.parse(text)
    except (note.NoteError, checkpoint.CheckpointError):
        return False
    return parsed.origin == origin and any((s.name, s.key_id) == (signer.name, signer.key_id) for s in sigs)


def latest(db: Database, index_id: int, signer: note.Ed25519Signer, origin: str, interval: float) -> bytes:
    """The checkpoint of index `index_id`'s log to serve now (signing and storing a new one when due)."""
    now = utcnow()
    with db.read() as session:
        tree_size = store.size(session, index_id)
        newest = (
            sa.select(LogCheckpoint)
            .where(LogCheckpoint.index_id == index_id)
            .order_by(LogCheckpoint.size.desc())
            .limit(1)
        )
        row = session.execute(newest).scalar_one_or_none()
        if row is not None and _signed_by(row.note, signer, origin):
            fresh = now - row.created < dt.timedelta(seconds=interval)
            if row.size >= tree_size or fresh:
                return row.note
    tree_size = store.integrate(db, index_id)  # the stored hashes cover every entry committed by now
    with db.read() as session:
        root = store.root_hash(session, index_id, tree_size)
    signed = checkpoint.sign(checkpoint.Checkpoint(origin, tree_size, root), [signer])
    try:
        with db.write() as session:
            existing = session.get(LogCheckpoint, (index_id, tree_size))
            if existing is None:
                session.add(LogCheckpoint(index_id=index_id, size=tree_size, note=signed, created=now))
            else:  # signed by an earlier key or for an earlier origin: replaced
                existing.note = signed
                existing.created = now
    except IntegrityError:
        pass  # another worker stored this size first: the same note (deterministic signatures)
    return signed
