"""Copying every blob of one store into another, verified (``assay admin blobs migrate``).

Each blob a file row refers to is streamed from the source into the target's staging, hashed on
the way and compared with the sha256 the database recorded (so a corrupt source blob is never
copied: it is reported, for ``assay admin fsck``), published, and read back from the target and
hashed again. A blob already in the target with the right hash is left alone, so the command can
be run again after an interruption and only copies what is missing. Blobs no row refers to are
not copied (they are fsck's orphans).

No downtime for reads: servers are switched to the new store first, with the old directory as
``blob_store_fallback`` (reads that miss the new store are answered from the old one; new
uploads go to the new store), and the copy runs while they serve. Every key is readable at
every moment: from the old store until its copy is published, from either afterwards. Once the
command reports nothing left, the fallback can be dropped at the next restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa

from assay.storage.blobs import BlobStore
from assay.storage.db import Database
from assay.storage.models import File

CHUNK = 1024 * 1024


@dataclass
class MigrationReport:
    copied: list[str] = field(default_factory=list)
    #: Already in the target, hash verified.
    present: list[str] = field(default_factory=list)
    #: (key, what is wrong): not copied, or copied and not reading back right.
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: Source blobs no row refers to (left for fsck).
    unreferenced: int = 0


def _hash(store: BlobStore, key: str) -> str | None:
    try:
        opened = store.open(key)
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    for chunk in opened.chunks(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _recorded(db: Database) -> dict[str, str]:
    """Every referenced blob key and the sha256 its row records."""
    with db.read() as session:
        rows = session.execute(sa.select(File.blob_key, File.sha256, File.metadata_blob_key, File.metadata_sha256))
        out: dict[str, str] = {}
        for blob_key, sha256, metadata_key, metadata_sha256 in rows:
            out[blob_key] = sha256
            if metadata_key and metadata_sha256:
                out[metadata_key] = metadata_sha256
    return out


def _still_referenced(db: Database, key: str) -> bool:
    with db.read() as session:
        return (
            session.execute(
                sa.select(File.id).where(sa.or_(File.blob_key == key, File.metadata_blob_key == key))
            ).first()
            is not None
        )


def migrate(db: Database, source: BlobStore, target: BlobStore) -> MigrationReport:
    report = MigrationReport()
    recorded = _recorded(db)
    seen: set[str] = set()
    for info in source.iter_blobs():
        expected = recorded.get(info.key)
        if expected is None:
            report.unreferenced += 1
            continue
        seen.add(info.key)
        if _hash(target, info.key) == expected:
            report.present.append(info.key)
            continue
        problem = _copy(source, target, info.key, expected)
        if problem is not None:
            report.problems.append((info.key, problem))
            continue
        if not _still_referenced(db, info.key):
            # Removed (``assay admin remove``) while it was being copied: no orphan left behind.
            target.delete(info.key)
            continue
        report.copied.append(info.key)
    for key in sorted(set(recorded) - seen):
        if _hash(target, key) == recorded[key]:
            report.present.append(key)  # uploaded to the target directly, or copied before
        elif _still_referenced(db, key):
            report.problems.append((key, "in neither store (assay admin fsck reports it)"))
    return report


def _copy(source: BlobStore, target: BlobStore, key: str, expected: str) -> str | None:
    """Copy one blob, verified at both ends; the problem, or None."""
    staged = target.stage()
    try:
        digest = hashlib.sha256()
        try:
            opened = source.open(key)
        except FileNotFoundError:
            return "removed from the source meanwhile"
        for chunk in opened.chunks(CHUNK):
            digest.update(chunk)
            staged.write(chunk)
        if digest.hexdigest() != expected:
            return f"source blob hashes to {digest.hexdigest()}, recorded {expected}: not copied (run assay admin fsck)"
        target.publish(staged, key)
    finally:
        staged.discard()
    copied = _hash(target, key)
    if copied != expected:
        return f"the copy reads back as {copied}, expected {expected}"
    return None
