"""Crash recovery at start-up: finish what killed processes left half done.

An upload records each blob it is about to publish in the ``pending_blobs`` journal (committed
before the rename) and deletes the entry in the transaction that adds the file's row. So after a
crash, a journal entry whose process no longer exists names a blob that may have no row: if no
file row refers to it, it is removed. Entries of other hosts (several servers on one database and
store) are only taken once older than ``stale_after``, when no upload can still be in flight.
Staging files of dead processes go too. Together this is what makes "a killed upload leaves
nothing behind" hold without waiting for ``assay admin fsck``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa

from assay.storage.blobs import HOST, BlobStore, process_alive
from assay.storage.db import Database
from assay.storage.models import PendingBlob
from assay.storage.references import blob_referenced

log = logging.getLogger(__name__)

#: An upload is done with its journal entry within seconds of writing it; an hour-old entry is
#: from a crash whatever host wrote it.
STALE_AFTER = 3600.0


@dataclass(frozen=True)
class Recovered:
    blobs_removed: int
    entries_cleared: int
    staging_removed: int


def _abandoned(entry: PendingBlob, now: float, stale_after: float) -> bool:
    if entry.host == HOST and not process_alive(entry.pid):
        return True
    return now - entry.created.timestamp() > stale_after


def recover(db: Database, blobs: BlobStore, *, stale_after: float = STALE_AFTER) -> Recovered:
    now = time.time()
    with db.read() as session:
        entries = list(session.execute(sa.select(PendingBlob)).scalars())
    removed = cleared = 0
    for entry in entries:
        if not _abandoned(entry, now, stale_after):
            continue
        # The blob is removed inside the transaction that deletes its entry: a live upload of
        # the same file must first insert the same (unique) key, which waits for this commit,
        # and only then renames its blob into place. So it never loses its blob to us.
        with db.write() as session:
            row = session.get(PendingBlob, entry.key)
            if row is None:
                continue  # another process recovered it
            # A mirrored file (assay.mirror.files) journals its blobs the same way, and a
            # rejected stage (assay.stages) its removals.
            referenced = blob_referenced(session, entry.key)
            if not referenced:
                if blobs.exists(entry.key):
                    removed += 1
                # Unconditionally: a publish cut off mid-way may have left what lists no blob
                # (an S3 multipart upload's parts), which the store's delete frees as well.
                blobs.delete(entry.key)
            session.delete(row)
            cleared += 1
    staging = blobs.staging.clean(older_than=stale_after)
    # S3: multipart uploads of killed processes list no object, but keep their parts.
    staging += blobs.abort_stale_uploads(older_than=stale_after)
    if removed or cleared or staging:
        log.info(
            "recovered from an interrupted upload: removed %d unreferenced blob(s), %d journal entr(ies), "
            "%d staging file(s)",
            removed,
            cleared,
            staging,
        )
    return Recovered(removed, cleared, staging)
