"""The transparency log in the metadata database: appending entries, hashing them, reading tiles.

Every writer that changes what the index serves calls ``append(session, index_id, entry)`` in its own
transaction, so the entry commits with the change or not at all (a SIGKILL at any point leaves
the log and the index agreeing; ``assay admin fsck`` checks they do). The append only
sequences and stores the entry: it bumps ``log_state.size`` with UPDATE ... RETURNING (the
entry's leaf index) and inserts the entry, one statement on PostgreSQL (a data-modifying CTE),
two on SQLite. The row lock (PostgreSQL) or the write lock (SQLite, whose writers are
serialised anyway) holds other appenders until the transaction ends, so the sequence has no
gaps and no duplicates, a rolled-back writer gives its number back, and entries commit in
sequence order. Its cost does not depend on the log's size.

The tree itself, the stored hashes (about two per entry, the layout of Go's tlog from which
tiles, tree heads and proofs are read), is derived from the entries by ``integrate``, outside
any upload's transaction: before a checkpoint is signed and before a tile the hashes do not
yet cover is served. Integrating is idempotent and may run in any worker; the hashes are a
pure function of the entries, so a crash in the middle leaves nothing wrong, only less done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assay.log import entries, merkle, tiles
from assay.storage.db import Database
from assay.storage.models import Base, File, PackageIndex, Project, Publisher, Release, UTCDateTime, utcnow


class LogError(RuntimeError):
    """The log's tables are not in the state appends rely on (a missing migration, corruption)."""


# Built once: constructing and compiling statements costs more than running them here, and the
# append sits inside every upload's commit. Core statements on the session's connection (the
# same transaction) skip the ORM's per-statement work.
_STATE = sa.Table("log_state", Base.metadata)
_HASHES = sa.Table("log_hashes", Base.metadata)
_ENTRIES = sa.Table("log_entries", Base.metadata)
_BUMP = (
    sa.update(_STATE)
    .where(_STATE.c.id == sa.bindparam("log_index"))
    .values(size=_STATE.c.size + 1)
    .returning(_STATE.c.size)
)
_INSERT_ENTRY = sa.insert(_ENTRIES)
# Typed casts: PostgreSQL must know each parameter's type in a SELECT list.
_ENTRY_VALUES = (
    sa.cast(sa.bindparam("index_id", type_=sa.Integer()), sa.Integer()),
    sa.cast(sa.bindparam("kind", type_=sa.String()), sa.String(30)),
    sa.cast(sa.bindparam("filename", type_=sa.String()), sa.String(300)),
    sa.cast(sa.bindparam("data", type_=sa.LargeBinary()), sa.LargeBinary()),
    sa.cast(sa.bindparam("created", type_=UTCDateTime()), sa.DateTime(timezone=True)),
)
_SEQ = _BUMP.returning((_STATE.c.size - 1).label("seq")).cte("bumped")
#: PostgreSQL: bump and insert in one round trip.
_APPEND_PG = sa.insert(_ENTRIES).from_select(
    ["seq", "index_id", "kind", "filename", "data", "created"], sa.select(_SEQ.c.seq, *_ENTRY_VALUES)
).returning(_ENTRIES.c.seq)
_READ_HASHES = sa.select(_HASHES.c.idx, _HASHES.c.hash).where(
    _HASHES.c.index_id == sa.bindparam("index_id"), _HASHES.c.idx.in_(sa.bindparam("idx", expanding=True))
)
_LAST_HASH = sa.select(sa.func.max(_HASHES.c.idx)).where(_HASHES.c.index_id == sa.bindparam("index_id"))
_READ_SIZE = sa.select(_STATE.c.size).where(_STATE.c.id == sa.bindparam("index_id"))
_INDEX_NAME = sa.select(PackageIndex.name).where(PackageIndex.id == sa.bindparam("index_id"))
_INSERT_HASH = sa.insert(_HASHES)
#: Integrators take turns (PostgreSQL; SQLite writers are serialised already).
_INTEGRATE_LOCK_ID = 0x61_6C_6F_67  # "alog"


def _missing(index_id: int) -> LogError:
    return LogError(f"the log of index {index_id} (its log_state row) is missing: the schema is not migrated")


def append(session: Session, index_id: int, entry: dict[str, Any]) -> int:
    """Append `entry` to index `index_id`'s log inside the caller's transaction; returns its
    leaf index. The entry's ``index`` is set to that index's name here, so an entry always
    names the log it is in (and cannot be replayed into another index's)."""
    name = session.execute(_INDEX_NAME, {"index_id": index_id}).scalar_one_or_none()
    if name is None:
        raise _missing(index_id)
    data = entries.encode({**entry, "index": name})
    # Every other row this transaction changes is written (and locked) first, so the log's row
    # is always the last lock a writer takes: two writers never wait on each other crosswise
    # (PostgreSQL would abort one of them as a deadlock).
    session.flush()
    conn = session.connection()
    values = {
        "index_id": index_id,
        "kind": entry["kind"],
        "filename": entry.get("filename"),
        "data": data,
        "created": utcnow(),
    }
    if conn.dialect.name == "postgresql":
        seq = conn.execute(_APPEND_PG, {"log_index": index_id, **values}).scalar_one_or_none()
    else:
        size = conn.execute(_BUMP, {"log_index": index_id}).scalar_one_or_none()
        seq = None if size is None else int(size) - 1
        if seq is not None:
            conn.execute(_INSERT_ENTRY, {"seq": seq, **values})
    if seq is None:
        raise _missing(index_id)
    return int(seq)


def hashed_size(session: Session, index_id: int) -> int:
    """How many entries the stored hashes cover: the last stored hash closes the largest
    subtree ending at the last hashed leaf, so its (level, n) gives the leaf count."""
    last = session.connection().execute(_LAST_HASH, {"index_id": index_id}).scalar()
    if last is None:
        return 0
    level, n = merkle.split_stored_hash_index(int(last))
    return (n + 1) << level


def integrate(db: Database, index_id: int, *, batch: int = 4096) -> int:
    """Extend the stored hashes of index `index_id`'s log over every committed entry; returns
    the tree size they cover."""
    while True:
        with db.read() as session:
            size = _size(session, index_id)
            done = hashed_size(session, index_id)
        if done >= size:
            return done
        try:
            with db.write() as session:
                conn = session.connection()
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:k, :i)"), {"k": _INTEGRATE_LOCK_ID, "i": index_id}
                    )
                done = hashed_size(session, index_id)
                upto = min(size, done + batch)
                rows = conn.execute(
                    sa.select(_ENTRIES.c.seq, _ENTRIES.c.data)
                    .where(_ENTRIES.c.index_id == index_id, _ENTRIES.c.seq >= done, _ENTRIES.c.seq < upto)
                    .order_by(_ENTRIES.c.seq)
                ).all()
                if done < upto and len(rows) != upto - done:
                    # Entries below the committed size are always there (they commit with it):
                    # a database edited by hand. Stop rather than loop; fsck says more.
                    raise LogError(f"log entries {done}..{upto - 1}: only {len(rows)} are there")
                new = _hash_entries(conn, index_id, done, [(int(seq), bytes(data)) for seq, data in rows])
                if new:
                    conn.execute(
                        _INSERT_HASH, [{"index_id": index_id, "idx": i, "hash": h} for i, h in sorted(new.items())]
                    )
        except IntegrityError:
            continue  # another process hashed the same entries first: look again


def _hash_entries(
    conn: sa.Connection, index_id: int, done: int, rows: Sequence[tuple[int, bytes]]
) -> dict[int, bytes]:
    """The stored hashes entries done, done+1, ... add, reading older ones from the table."""
    new: dict[int, bytes] = {}
    stored = _connection_reader(conn, index_id)

    def read(indexes: Sequence[int]) -> list[bytes]:
        far = [i for i in indexes if i not in new]
        got = dict(zip(far, stored(far), strict=True))
        return [new[i] if i in new else got[i] for i in indexes]

    for expected, (seq, data) in enumerate(rows, start=done):
        if seq != expected:
            raise LogError(f"log entry {expected} is missing (found {seq})")
        first = merkle.stored_hash_index(0, seq)
        for i, h in enumerate(merkle.stored_hashes_for_leaf(seq, merkle.leaf_hash(data), read)):
            new[first + i] = h
    return new


# ---- writers' helpers ------------------------------------------------------------------------


def append_upload(session: Session, index_id: int, filename: str, publisher_id: int | None) -> int:
    """The ``upload`` entry of a file just added in this session (the row is flushed by the
    query): what the uploader's commit calls, so its own code stays as it is."""
    row = session.execute(
        sa.select(File, Release.version, Project.normalized_name)
        .join(Release, Release.id == File.release_id)
        .join(Project, Project.id == File.project_id)
        .where(File.index_id == index_id, File.filename == filename)
    ).one()
    file, version, project = row
    return append(
        session,
        index_id,
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


def backfill_uploads(session: Session, index_id: int) -> list[str]:
    """Append an ``upload`` entry for every file that has none: files stored before the index
    had a log (a database migrated from before revision 0005), in upload order. Each entry says
    it was ``recorded`` afterwards, with what the index still knows (the token id, the
    provenance digest; the minting publisher of an old token upload is not kept), so nobody
    mistakes it for a record made at upload time. Returns the filenames, in log order."""
    logged = sa.select(_ENTRIES.c.filename).where(
        _ENTRIES.c.index_id == index_id, _ENTRIES.c.kind == "upload", _ENTRIES.c.filename.is_not(None)
    )
    rows = session.execute(
        sa.select(File, Release.version, Project.normalized_name)
        .join(Release, Release.id == File.release_id)
        .join(Project, Project.id == File.project_id)
        .where(File.index_id == index_id, File.filename.not_in(logged))
        .order_by(File.upload_time, File.id)
    ).all()
    now = utcnow()
    for file, version, project in rows:
        entry = entries.upload(
            project=project,
            version=version,
            filename=file.filename,
            sha256=file.sha256,
            size=file.size,
            upload_time=file.upload_time,
            publisher=None,
            token=file.uploaded_by_token_id,
            provenance=file.provenance,
        )
        entry["recorded"] = entries.timestamp(now)
        append(session, index_id, entry)
    return [file.filename for file, _, _ in rows]


def _publisher_block(session: Session, publisher_id: int | None) -> dict[str, Any] | None:
    """The Trusted Publisher's identity, as PEP 740 provenance names it (kind, repository,
    workflow, ...), or None for an API-token upload."""
    if publisher_id is None:
        return None
    publisher = session.get(Publisher, publisher_id)
    if publisher is None:
        return None
    from assay.publishers import identity_of

    identity = identity_of(publisher.kind, publisher.config, publisher.issuer_url)
    if identity is None:
        return {"kind": publisher.kind, "issuer": publisher.issuer_url}
    return identity.to_publisher()


def removals(session: Session, files: Sequence[File], project: str) -> list[dict[str, Any]]:
    """The ``remove`` entries (one per file) of file rows about to be deleted: built before the
    deletes (the releases may go too), appended with ``append_all`` at the end."""
    when = utcnow()
    versions: dict[int, str] = {}
    if files:
        versions = {
            rid: version for rid, version in session.execute(
                sa.select(Release.id, Release.version).where(Release.id.in_({f.release_id for f in files}))
            )
        }
    return [entries.remove(project, versions.get(f.release_id, ""), f.filename, f.sha256, when=when) for f in files]


def append_all(session: Session, index_id: int, batch: Sequence[dict[str, Any]]) -> None:
    for entry in batch:
        append(session, index_id, entry)


# ---- reading ----------------------------------------------------------------------------------


def _size(session: Session, index_id: int) -> int:
    value = session.connection().execute(_READ_SIZE, {"index_id": index_id}).scalar_one_or_none()
    if value is None:
        raise _missing(index_id)
    return int(value)


def size(session: Session, index_id: int) -> int:
    """How many entries the log has (committed; the stored hashes may lag, see ``integrate``)."""
    return _size(session, index_id)


def hash_reader(session: Session, index_id: int) -> merkle.HashReader:
    """A `merkle.HashReader` over index `index_id`'s ``log_hashes``, one SELECT per batch."""
    return _connection_reader(session.connection(), index_id)


def _connection_reader(conn: sa.Connection, index_id: int) -> merkle.HashReader:
    def read(indexes: Sequence[int]) -> list[bytes]:
        if not indexes:
            return []
        found: dict[int, bytes] = dict(
            conn.execute(_READ_HASHES, {"index_id": index_id, "idx": sorted(set(indexes))}).all()
        )
        missing = [i for i in indexes if i not in found]
        if missing:
            raise LogError(f"stored hash {missing[0]} is missing from log_hashes")
        return [found[i] for i in indexes]

    return read


def root_hash(session: Session, index_id: int, tree_size: int) -> bytes:
    return merkle.tree_hash(tree_size, hash_reader(session, index_id))


def tile_exists(tile: tiles.Tile, tree_size: int) -> bool:
    """Whether the tree of `tree_size` leaves has (at least) this tile's hashes."""
    return tile.n * tiles.TILE_WIDTH + tile.width <= tree_size >> (tiles.TILE_HEIGHT * tile.level)


def read_tile(session: Session, index_id: int, tile: tiles.Tile) -> bytes:
    return tiles.tile_data(tile, hash_reader(session, index_id))


def read_entries(session: Session, index_id: int, first: int, count: int) -> list[bytes]:
    e = _ENTRIES.c
    rows = list(
        session.connection().execute(
            sa.select(e.data).where(e.index_id == index_id, e.seq >= first, e.seq < first + count).order_by(e.seq)
        ).scalars()
    )
    if len(rows) != count:
        raise LogError(f"log entries {first}..{first + count - 1}: {len(rows)} of {count} are there")
    return rows


def read_bundle(session: Session, index_id: int, tile: tiles.Tile) -> bytes:
    """The entry bundle of a level-0 tile (C2SP tlog-tiles ``tile/entries/<N>[.p/<W>]``)."""
    return tiles.encode_bundle(read_entries(session, index_id, tile.n * tiles.TILE_WIDTH, tile.width))
