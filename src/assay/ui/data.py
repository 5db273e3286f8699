"""What the pages show, read through the storage layer in one read transaction each (as
``assay.index.pages`` loads the simple pages)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version
from sqlalchemy.orm import Session

from assay.index import jsonapi, rebuild_reports
from assay.index.pages import ProjectHead
from assay.index.paths import METADATA_SUFFIX, file_path, public_key
from assay.index.provenance_state import ReleaseProvenance, file_sources, release_states
from assay.indexes import IndexRef
from assay.log.approvals import Approval
from assay.storage.models import DEFAULT_INDEX_ID, File, LogEntry, Project, Release, User


def _vkey(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:  # pragma: no cover - uploads are validated
        return (0, version)


@dataclass
class ReleaseRow:
    id: int
    version: str
    canonical_version: str
    created: dt.datetime
    yanked: bool
    yanked_reason: str | None
    files: int
    provenance: ReleaseProvenance


@dataclass
class ProjectData:
    head: ProjectHead
    #: Newest first.
    releases: list[ReleaseRow]
    latest: ReleaseRow | None
    metadata: dict[str, Any] = field(default_factory=dict)


_RELEASES = sa.select(
    Release.id, Release.version, Release.canonical_version, Release.created, Release.yanked, Release.yanked_reason
).where(Release.project_id == sa.bindparam("project_id"))
# Only what the provenance state needs of each file: its release and its provenance.
_FILE_PROVENANCE = sa.select(File.release_id, File.provenance).where(File.project_id == sa.bindparam("project_id"))


def _latest(rows: list[ReleaseRow], keys: dict[str, tuple[int, Version | str]]) -> ReleaseRow | None:
    """PyPI's choice (as the JSON API's): the newest final non-yanked release with files;
    failing that the newest non-yanked one with files, then the newest of all."""
    with_files = [r for r in rows if r.files]
    candidates = [r for r in with_files if not r.yanked] or with_files or rows
    if not candidates:
        return None

    def final(r: ReleaseRow) -> bool:
        key = keys[r.version][1]
        return isinstance(key, Version) and not key.is_prerelease

    finals = [r for r in candidates if final(r)]
    return max(finals or candidates, key=lambda r: keys[r.version])


def load_project(session: Session, head: ProjectHead) -> ProjectData:
    raw = session.execute(_RELEASES, {"project_id": head.id}).all()
    sources: dict[int, list[frozenset[str]]] = {}
    # PEP 792: a quarantined project offers no files (and so shows none).
    if head.status != "quarantined":
        for release_id, provenance in session.execute(_FILE_PROVENANCE, {"project_id": head.id}):
            sources.setdefault(release_id, []).append(file_sources(provenance))
    keys = {r.version: _vkey(r.version) for r in raw}  # each version parsed once
    ordered = sorted(raw, key=lambda r: keys[r.version])
    states = release_states((r.version, sources.get(r.id, [])) for r in ordered)
    rows = [
        ReleaseRow(
            r.id, r.version, r.canonical_version, r.created, r.yanked, r.yanked_reason, len(sources.get(r.id, [])),
            states[r.version],
        )
        for r in reversed(ordered)
    ]
    latest = _latest(rows, keys)
    metadata: dict[str, Any] = {}
    if latest is not None:
        metadata = session.execute(sa.select(Release.core_metadata).where(Release.id == latest.id)).scalar() or {}
    return ProjectData(head, rows, latest, metadata)


def find_release(data: ProjectData, version: str) -> ReleaseRow | None:
    try:
        wanted = canonicalize_version(Version(version))
    except InvalidVersion:
        return None
    return next((r for r in data.releases if r.canonical_version == wanted), None)


@dataclass
class FileRow:
    filename: str
    url: str
    metadata_url: str | None
    packagetype: str
    python_version: str
    requires_python: str | None
    size: int
    sha256: str
    blake2_256: str
    md5: str
    upload_time: dt.datetime
    #: Who uploaded it, as the index recorded it.
    uploader: str
    trusted_publisher: dict[str, Any] | None
    provenance: dict[str, Any] | None


def _uploader(f: File, username: str | None) -> str:
    if f.publisher_claims is not None:
        repo = f.publisher_claims.get("repository") or f.publisher_claims.get("project_path")
        return f"a Trusted Publisher ({repo})" if repo else "a Trusted Publisher"
    if username:
        return f"user {username}"
    if f.uploaded_by_token_id:
        return f"API token {f.uploaded_by_token_id}"
    return "unknown (imported)"


def _file_url(index: IndexRef, blob_key: str) -> str:
    """Where the index serves a file: ``[/<index>]/files/<key without the index's blob prefix>``
    (as the simple pages and the JSON API link it)."""
    return index.prefix + file_path(public_key(index, blob_key))


def load_files(session: Session, index: IndexRef, head: ProjectHead, release_id: int) -> list[FileRow]:
    if head.status == "quarantined":
        return []
    rows = session.execute(
        sa.select(File, User.username)
        .outerjoin(User, File.uploaded_by_user_id == User.id)
        .where(File.release_id == release_id)
        .order_by(File.filename)
    ).all()
    return [
        FileRow(
            filename=f.filename,
            url=_file_url(index, f.blob_key),
            metadata_url=_file_url(index, f.blob_key) + METADATA_SUFFIX if f.metadata_sha256 else None,
            packagetype=f.packagetype,
            python_version=f.python_version,
            requires_python=f.requires_python,
            size=f.size,
            sha256=f.sha256,
            blake2_256=f.blake2_256,
            md5=f.md5,
            upload_time=f.upload_time,
            uploader=_uploader(f, username),
            trusted_publisher=f.publisher_claims,
            provenance=f.provenance,
        )
        for f, username in rows
    ]


@dataclass(frozen=True)
class LogRecord:
    seq: int
    kind: str
    created: dt.datetime
    #: Whether this entry recorded provenance (an upload with it, or a provenance import).
    provenance: bool


def log_records(session: Session, filename: str, index_id: int = DEFAULT_INDEX_ID) -> list[LogRecord]:
    """The index's own transparency-log entries about one file (issue 13)."""
    import json

    out = []
    for seq, kind, created, data in session.execute(
        sa.select(LogEntry.seq, LogEntry.kind, LogEntry.created, LogEntry.data)
        .where(LogEntry.index_id == index_id, LogEntry.filename == filename)
        .order_by(LogEntry.seq)
    ):
        try:
            entry = json.loads(data)
        except ValueError:  # pragma: no cover - entries are written by the index
            entry = {}
        out.append(LogRecord(seq, kind, created, bool(entry.get("provenance_sha256"))))
    return out


@dataclass(frozen=True)
class Rebuild:
    """One registered rebuilder's verified report on this file's bytes (issue 14, item 4)."""

    rebuilder: str
    issuer: str
    reproduced: bool
    rebuilt_sha256: str
    time: str


def rebuilds(session: Session, index_id: int, filename: str, sha256: str) -> list[Rebuild]:
    """The file's rebuild reports, oldest first (what ``/integrity/.../rebuilds`` serves)."""
    out = []
    for doc in rebuild_reports.of_files(session, index_id, [(filename, sha256)]).get(filename, []):
        who = doc["rebuilder"]
        identity = next((str(v) for k, v in who.items() if k != "issuer"), "unknown")
        out.append(
            Rebuild(identity, str(who.get("issuer", "")), doc["outcome"] == "match", doc["rebuilt_sha256"], doc["time"])
        )
    return out


def approval(session: Session, project_id: int, filename: str, sha256: str) -> Approval | None:
    """The signed stage approval that made this file live (issue 14), if it went live so."""
    return jsonapi.Approvals.load(session, project_id).by_file.get((filename, sha256.lower()))


@dataclass(frozen=True)
class Hit:
    name: str
    normalized_name: str
    version: str | None
    summary: str | None


#: At most this many search results (the page says when there were more).
MAX_HITS = 100


def search(session: Session, query: str, index_id: int = DEFAULT_INDEX_ID) -> tuple[list[Hit], bool]:
    """Projects whose name or a release's summary contains ``query`` (case-insensitive; the name
    also as normalized, PEP 503). Summaries are read from the stored core metadata."""
    words = query.strip().lower()
    normalized = "-".join(words.replace("_", "-").replace(".", "-").split())
    summary = Release.core_metadata["summary"].as_string()
    rows = session.execute(
        sa.select(Project.name, Project.normalized_name, Release.version, summary)
        .outerjoin(Release, Release.project_id == Project.id)
        .where(
            Project.index_id == index_id,
            sa.or_(
                Project.normalized_name.contains(normalized, autoescape=True),
                sa.func.lower(summary).contains(words, autoescape=True),
            )
        )
        .order_by(Project.normalized_name)
    ).all()
    best: dict[str, Hit] = {}
    for name, norm, version, text in rows:
        old = best.get(norm)
        if old is None or (version is not None and (old.version is None or _vkey(version) > _vkey(old.version))):
            best[norm] = Hit(name, norm, version, text)
    hits = sorted(best.values(), key=lambda h: (h.normalized_name != normalized, h.normalized_name))
    return hits[:MAX_HITS], len(hits) > MAX_HITS
