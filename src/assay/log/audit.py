"""Checking the transparency log against the index and against itself (``assay admin fsck``).

- the entries are numbered 0 .. size-1 with no gap, each in its canonical (RFC 8785) form;
- recomputing every stored hash from the entries gives exactly ``log_hashes`` (so every tile
  served and every root is what the entries say), and each stored checkpoint's root is the
  root of its size;
- every file row has exactly one ``upload`` entry, with the file's sha256; a file name has at
  most one ``upload`` entry overall (a name is never reused, PyPI's rule).

Entries are read in batches in one read transaction; memory grows with the log (about two
hashes per entry, 64 bytes of hash plus Python's overhead).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import rfc8785
import sqlalchemy as sa

from assay.log import checkpoint, merkle, note
from assay.storage.db import Database
from assay.storage.models import DEFAULT_INDEX_ID, File, LogCheckpoint, LogEntry, LogHash, LogState, PackageIndex

BATCH = 5000


@dataclass(frozen=True)
class LogProblem:
    kind: str  # log-gap, log-entry, log-hashes, log-checkpoint, log-missing-upload, log-duplicate-upload, log-mismatch
    key: str
    detail: str
    filename: str | None = None


@dataclass
class LogReport:
    size: int = 0
    problems: list[LogProblem] = field(default_factory=list)


def _leaf_counts_near(hashes: int) -> range:
    """Leaf counts k whose stored-hash count (2k - popcount(k)) could be `hashes`."""
    return range(hashes // 2, hashes // 2 + 34)


#: A file stored before the index had a log has no entry until it is backfilled.
_NO_UPLOAD_ENTRY = "the file has no upload entry (stored before the log? `assay admin log backfill`)"


def check(db: Database) -> LogReport:
    """Every index's log against its files (one log per index: issue 11, part 3)."""
    report = LogReport()
    with db.read() as session:
        indexes = session.execute(sa.select(PackageIndex.id, PackageIndex.name).order_by(PackageIndex.id)).all()
    for index_id, name in indexes:
        found = _check_index(db, index_id)
        report.size += found.size
        label = "" if index_id == DEFAULT_INDEX_ID else f"{name}:"
        report.problems += [replace(p, key=label + p.key) for p in found.problems]
    return report


def _check_index(db: Database, index_id: int) -> LogReport:
    report = LogReport()
    problems = report.problems
    computed = merkle.MemoryHashStore()
    uploads: dict[str, list[str]] = {}
    with db.read() as session:
        size = session.execute(sa.select(LogState.size).where(LogState.id == index_id)).scalar_one_or_none()
        if size is None:
            problems.append(LogProblem("log-state", "log_state", "the log's size row is missing"))
            return report
        report.size = size
        expected = 0
        for seq, kind, filename, data in session.execute(
            sa.select(LogEntry.seq, LogEntry.kind, LogEntry.filename, LogEntry.data)
            .where(LogEntry.index_id == index_id)
            .order_by(LogEntry.seq)
            .execution_options(yield_per=BATCH)
        ):
            if seq != expected:
                problems.append(LogProblem("log-gap", str(expected), f"entries {expected}..{seq - 1} are missing"))
                return report  # the hashes of everything after a gap are meaningless
            expected += 1
            computed.append(data)
            try:
                entry = json.loads(data)
                canonical = rfc8785.dumps(entry) == data
            except (ValueError, rfc8785.CanonicalizationError):
                entry, canonical = None, False
            if not canonical or not isinstance(entry, dict) or entry.get("kind") != kind:
                problems.append(LogProblem("log-entry", str(seq), "not a canonical JSON entry of its kind", filename))
                continue
            if kind == "upload":
                uploads.setdefault(str(entry.get("filename")), []).append(str(entry.get("sha256")))
        if expected != size:
            problems.append(LogProblem("log-gap", str(expected), f"the log's size is {size}, {expected} entries"))
            return report
        stored = 0
        for at, (idx, h) in enumerate(
            session.execute(
                sa.select(LogHash.idx, LogHash.hash)
                .where(LogHash.index_id == index_id)
                .order_by(LogHash.idx)
                .execution_options(yield_per=BATCH)
            )
        ):
            if idx != at or at >= len(computed.hashes) or computed.hashes[at] != h:
                problems.append(LogProblem("log-hashes", str(idx), "stored hash does not recompute from the entries"))
                break
            stored = at + 1
        else:
            # Fewer stored hashes than entries is integration not done yet (assay.log.store),
            # but they must end where a leaf's hashes end.
            if stored and stored not in {merkle.stored_hash_count(k) for k in _leaf_counts_near(stored)}:
                problems.append(LogProblem("log-hashes", str(stored), "the stored hashes end inside a leaf's"))
        for cp_size, msg in session.execute(
            sa.select(LogCheckpoint.size, LogCheckpoint.note).where(LogCheckpoint.index_id == index_id)
        ):
            try:
                text, _ = note.parse(msg)
                cp = checkpoint.Checkpoint.parse(text)
            except (note.NoteError, checkpoint.CheckpointError) as exc:
                problems.append(LogProblem("log-checkpoint", str(cp_size), f"not a checkpoint: {exc}"))
                continue
            if cp.size != cp_size or cp_size > size or cp.root_hash != merkle.tree_hash(cp_size, computed):
                problems.append(LogProblem("log-checkpoint", str(cp_size), "the signed root is not the log's"))
        files = session.execute(sa.select(File.filename, File.sha256).where(File.index_id == index_id)).all()
    for filename, sha256 in files:
        logged = uploads.get(filename, [])
        if not logged:
            problems.append(LogProblem("log-missing-upload", filename, _NO_UPLOAD_ENTRY, filename))
        elif logged[0] != sha256:
            problems.append(LogProblem("log-mismatch", filename, f"logged sha256 {logged[0]}, file {sha256}", filename))
    for filename, logged in uploads.items():
        if len(logged) > 1:
            problems.append(LogProblem("log-duplicate-upload", filename, f"{len(logged)} upload entries", filename))
    return report
