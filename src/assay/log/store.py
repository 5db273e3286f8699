"""The transparency log in the metadata database: appending entries, reading hashes and tiles.

Every writer that changes what the index serves calls ``append(session, entry)`` in its own
transaction, so the entry commits with the change or not at all (a SIGKILL at any point leaves
the log and the index agreeing; ``assay admin fsck`` checks they do). Appending:

1. bumps ``log_state.size`` with one UPDATE ... RETURNING: the entry's leaf index. The row lock
   (PostgreSQL) or the write lock (SQLite, whose writers are serialised anyway) holds other
   appenders until this transaction ends, so the sequence has no gaps and no duplicates, and a
   rolled-back writer gives its number back;
2. reads the O(log n) left siblings the new leaf completes (``merkle.stored_hashes_for_leaf``),
   one SELECT by primary key;
3. inserts the entry and its stored hashes (about two per entry): the tree's whole state is the
   append-only ``log_hashes`` array, the layout of Go's tlog, from which tiles, tree heads and
   proofs are read without recomputing anything.

Appends come last in a writer's transaction (the counter's row lock is then held only for the
few inserts and the commit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assay.log import entries, merkle, tiles
from assay.storage.models import Base, File, LogEntry, LogState, Project, Publisher, Release, utcnow


class LogError(RuntimeError):
    """The log's tables are not in the state appends rely on (a missing migration, corruption)."""


# Built once: constructing and compiling statements costs more than running them here, and the
# append sits inside every upload's commit. Core statements on the session's connection (the
# same transaction) skip the ORM's per-statement work.
_STATE = sa.Table("log_state", Base.metadata)
_HASHES = sa.Table("log_hashes", Base.metadata)
_ENTRIES = sa.Table("log_entries", Base.metadata)
_BUMP = (
    sa.update(_STATE).where(_STATE.c.id == 1).values(size=_STATE.c.size + 1).returning(_STATE.c.size)
)
_READ_HASHES = sa.select(_HASHES.c.idx, _HASHES.c.hash).where(_HASHES.c.idx.in_(sa.bindparam("idx", expanding=True)))
_INSERT_HASH = sa.insert(_HASHES)
_INSERT_ENTRY = sa.insert(_ENTRIES)


def append(session: Session, entry: dict[str, Any]) -> int:
    """Append `entry` to the log inside the caller's transaction; returns its leaf index."""
    data = entries.encode(entry)
    conn = session.connection()
    new_size = conn.execute(_BUMP).scalar_one_or_none()
    if new_size is None:
        raise LogError("the log's state row (log_state id 1) is missing: the schema is not migrated")
    n = int(new_size) - 1
    hashes = merkle.stored_hashes_for_leaf(n, merkle.leaf_hash(data), _connection_reader(conn))
    first = merkle.stored_hash_index(0, n)
    conn.execute(_INSERT_HASH, [{"idx": first + i, "hash": h} for i, h in enumerate(hashes)])
    conn.execute(
        _INSERT_ENTRY,
        {"seq": n, "kind": entry["kind"], "filename": entry.get("filename"), "data": data, "created": utcnow()},
    )
    return n


def append_upload(session: Session, filename: str, publisher_id: int | None) -> int:
    """The ``upload`` entry of a file just added in this session (the row is flushed by the
    query): what the uploader's commit calls, so its own code stays as it is."""
    row = session.execute(
        sa.select(File, Release.version, Project.normalized_name)
        .join(Release, Release.id == File.release_id)
        .join(Project, Project.id == File.project_id)
        .where(File.filename == filename)
    ).one()
    file, version, project = row
    return append(
        session,
        entries.upload(
            project=project,
            version=version,
            filename=file.filename,
            sha256=file.sha256,
            size=file.size,
            upload_time=file.upload_time,
            publisher=_publisher_block(session, publisher_id),
            token=file.uploaded_by_token_id,
            provenance=file.provenance,
        ),
    )


def _publisher_block(session: Session, publisher_id: int | None) -> dict[str, Any] | None:
    """The Trusted Publisher's identity, as PEP 740 provenance names it (kind, repository,
    workflow, ...), or None for an API-token upload."""
    if publisher_id is None:
        return None
    publisher = session.get(Publisher, publisher_id)
    if publisher is None:
        return None
    from assay.publishing.kinds import get_kind

    identity = get_kind(publisher.kind).identity(publisher.config, publisher.issuer_url)
    if identity is None:
        return {"kind": publisher.kind, "issuer": publisher.issuer_url}
    return identity.to_publisher()


def append_removals(session: Session, files: Sequence[File], project: str) -> None:
    """One ``remove`` entry per file row about to be deleted in this session."""
    when = utcnow()
    versions = dict(
        session.execute(
            sa.select(Release.id, Release.version).where(Release.id.in_({f.release_id for f in files}))
        ).all()
    ) if files else {}
    for f in files:
        append(session, entries.remove(project, versions.get(f.release_id, ""), f.filename, f.sha256, when=when))


# ---- reading ----------------------------------------------------------------------------------


def size(session: Session) -> int:
    value = session.execute(sa.select(LogState.size).where(LogState.id == 1)).scalar_one_or_none()
    if value is None:
        raise LogError("the log's state row (log_state id 1) is missing: the schema is not migrated")
    return int(value)


def hash_reader(session: Session) -> merkle.HashReader:
    """A `merkle.HashReader` over ``log_hashes``, one SELECT per batch."""
    return _connection_reader(session.connection())


def _connection_reader(conn: sa.Connection) -> merkle.HashReader:
    def read(indexes: Sequence[int]) -> list[bytes]:
        if not indexes:
            return []
        found: dict[int, bytes] = dict(conn.execute(_READ_HASHES, {"idx": sorted(set(indexes))}).all())
        missing = [i for i in indexes if i not in found]
        if missing:
            raise LogError(f"stored hash {missing[0]} is missing from log_hashes")
        return [found[i] for i in indexes]

    return read


def root_hash(session: Session, tree_size: int) -> bytes:
    return merkle.tree_hash(tree_size, hash_reader(session))


def tile_exists(tile: tiles.Tile, tree_size: int) -> bool:
    """Whether the tree of `tree_size` leaves has (at least) this tile's hashes."""
    return tile.n * tiles.TILE_WIDTH + tile.width <= tree_size >> (tiles.TILE_HEIGHT * tile.level)


def read_tile(session: Session, tile: tiles.Tile) -> bytes:
    return tiles.tile_data(tile, hash_reader(session))


def read_entries(session: Session, first: int, count: int) -> list[bytes]:
    rows = list(
        session.execute(
            sa.select(LogEntry.data).where(LogEntry.seq >= first, LogEntry.seq < first + count).order_by(LogEntry.seq)
        ).scalars()
    )
    if len(rows) != count:
        raise LogError(f"log entries {first}..{first + count - 1}: {len(rows)} of {count} are there")
    return rows


def read_bundle(session: Session, tile: tiles.Tile) -> bytes:
    """The entry bundle of a level-0 tile (C2SP tlog-tiles ``tile/entries/<N>[.p/<W>]``)."""
    return tiles.encode_bundle(read_entries(session, tile.n * tiles.TILE_WIDTH, tile.width))
