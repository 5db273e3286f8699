"""Checking the database against the blob store (``assay admin fsck``).

Finds, and with ``repair`` quarantines:

* a file row whose blob is missing, or whose bytes no longer hash to the recorded sha256 (or
  size); the same for its PEP 658 metadata file;
* a blob no row refers to (left by a process killed between publishing the blob and committing
  its row: invisible to readers, but space and confusion);
* staging files left by killed uploads;
* anything under the data directory that group or others may read (``loose-mode``: the files of
  a private index, and the token hashes, must not be readable by the machine's other users;
  issue 10). Repair clears the group and other bits, in place.
* the transparency log disagreeing with the files table or with itself (issue 13): a file with
  no ``upload`` entry or with two, an entry whose sha256 is not the file's, entries with gaps,
  stored hashes or a signed checkpoint that do not recompute from the entries. These are
  reported, never repaired: the log only grows, so a fix is a new entry, not an edit.

Quarantine never deletes bytes: they move to ``<data dir>/quarantine/<timestamp>/`` (an S3
store: under ``<prefix>.quarantine/<timestamp>/`` in its bucket; staging files, which are local,
always to the data directory). Blobs are hashed as they stream from the store. A row whose
blob is missing or corrupt is removed (its filename stays used, as on PyPI) with an audit event,
so the index stops offering a file it cannot serve intact.

Blobs and staging files younger than ``grace`` seconds are left alone: they may belong to an
upload in flight in another process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from assay import audit
from assay.log import store as translog
from assay.storage.blobs import BlobStore
from assay.storage.changes import project_changed
from assay.storage.db import Database
from assay.storage.models import File, MirrorFile, MirrorMetadata, Project, StagedFile
from assay.storage.modes import loose_modes, tighten

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Problem:
    #: missing-blob, corrupt-blob, missing-metadata, corrupt-metadata, orphan-blob, stale-staging,
    #: loose-mode (key: the path relative to the data directory); log-* for the transparency log
    #: (see assay.log.audit), which repair leaves alone.
    kind: str
    key: str
    detail: str
    filename: str | None = None


@dataclass
class Report:
    files_checked: int = 0
    blobs_seen: int = 0
    log_entries: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


def _sha256(blobs: BlobStore, key: str) -> tuple[str, int] | None:
    """The blob's sha256 and size, hashed as it streams (an S3 object is never downloaded
    whole); None when there is no such blob."""
    try:
        opened = blobs.open(key)
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    size = 0
    for chunk in opened.chunks(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def check(db: Database, blobs: BlobStore, *, grace: float = 600.0, data_dir: Path | None = None) -> Report:
    report = Report()
    if data_dir is not None:
        for loose, mode, expected in loose_modes(data_dir):
            report.problems.append(
                Problem(
                    "loose-mode",
                    loose.relative_to(data_dir).as_posix(),
                    f"mode {mode:04o}, expected {expected:04o} (group or others can reach it)",
                )
            )
    with db.read() as session:
        rows = session.execute(
            sa.select(
                File.id,
                File.filename,
                File.blob_key,
                File.sha256,
                File.size,
                File.metadata_blob_key,
                File.metadata_sha256,
            )
        ).all()
    referenced: set[str] = set()
    for row in rows:
        report.files_checked += 1
        referenced.add(row.blob_key)
        found = _sha256(blobs, row.blob_key)
        if found is None:
            report.problems.append(Problem("missing-blob", row.blob_key, "no blob for this file", row.filename))
        else:
            digest, size = found
            if digest != row.sha256 or size != row.size:
                report.problems.append(
                    Problem(
                        "corrupt-blob",
                        row.blob_key,
                        f"sha256 {digest} / {size} bytes, recorded {row.sha256} / {row.size} bytes",
                        row.filename,
                    )
                )
        if row.metadata_blob_key:
            referenced.add(row.metadata_blob_key)
            mfound = _sha256(blobs, row.metadata_blob_key)
            if mfound is None:
                report.problems.append(
                    Problem("missing-metadata", row.metadata_blob_key, "no metadata file (PEP 658)", row.filename)
                )
            elif mfound[0] != row.metadata_sha256:
                report.problems.append(
                    Problem(
                        "corrupt-metadata",
                        row.metadata_blob_key,
                        "metadata file does not match its recorded sha256",
                        row.filename,
                    )
                )
    with db.read() as session:
        # Mirrored files (assay.mirror.files) own their blobs as file rows do; their checks
        # against upstream's sha256 happened before they were published.
        for key, mkey in session.execute(sa.select(MirrorFile.blob_key, MirrorFile.metadata_blob_key)):
            referenced.add(key)
            if mkey:
                referenced.add(mkey)
        referenced.update(session.execute(sa.select(MirrorMetadata.blob_key)).scalars())
        # Issue 14: a stage's files own their blobs (under their final keys) until approval.
        for key, mkey in session.execute(sa.select(StagedFile.blob_key, StagedFile.metadata_blob_key)):
            referenced.add(key)
            if mkey:
                referenced.add(mkey)
    now = time.time()
    for info in blobs.iter_blobs():
        report.blobs_seen += 1
        if info.key not in referenced and now - info.modified >= grace:
            report.problems.append(Problem("orphan-blob", info.key, "no file row refers to this blob"))
    for name, modified in blobs.staging.entries():
        if now - modified >= grace:
            report.problems.append(Problem("stale-staging", name, "staging file of an interrupted upload"))
    from assay.log import audit as log_audit

    log_report = log_audit.check(db)
    report.log_entries = log_report.size
    report.problems += [Problem(p.kind, p.key, p.detail, p.filename) for p in log_report.problems]
    return report


def repair(db: Database, blobs: BlobStore, report: Report, *, data_dir: Path, actor: str) -> str | None:
    """Quarantine what ``check`` found; returns where quarantined blobs went (None: nothing was
    moved). Everything goes through the store's interface: a directory or a bucket alike."""
    batch = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = False
    for problem in report.problems:
        if problem.kind == "loose-mode":
            tighten(data_dir / problem.key)
            report.repaired.append(problem)
            continue
        if problem.kind.startswith("log-"):
            continue  # the log only grows: nothing to move aside
        if problem.kind == "stale-staging":
            moved = blobs.staging.quarantine(problem.key, batch) or moved
        else:
            moved = blobs.quarantine(problem.key, batch) or moved
        if problem.kind in ("missing-blob", "corrupt-blob", "missing-metadata", "corrupt-metadata"):
            moved = _drop_row(db, blobs, problem, actor=actor, batch=batch) or moved
        report.repaired.append(problem)
    return blobs.quarantine_location(batch) if moved else None


def _drop_row(db: Database, blobs: BlobStore, problem: Problem, *, actor: str, batch: str) -> bool:
    moved = False
    with db.write() as session:
        # By blob key: filenames are unique only within an index, blob keys across them all.
        row = session.execute(
            sa.select(File).where(sa.or_(File.blob_key == problem.key, File.metadata_blob_key == problem.key))
        ).scalar_one_or_none()
        if row is None:
            return False
        project = session.get(Project, row.project_id)
        # The other blob of the pair (file or metadata) goes to quarantine as well.
        for key in (row.blob_key, row.metadata_blob_key):
            if key:
                moved = blobs.quarantine(key, batch) or moved
        logged = translog.removals(session, [row], project.normalized_name if project else "")
        session.delete(row)
        if project is not None:
            project_changed(session, project, listing_changed=False)
        audit.record(
            session,
            actor=actor,
            action="fsck:quarantine",
            project=project.normalized_name if project else None,
            target=problem.filename,
            details={"problem": problem.kind, "detail": problem.detail, "quarantine": blobs.quarantine_location(batch)},
        )
        translog.append_all(session, row.index_id, logged)
    return moved
