"""Building and caching simple pages.

A project page changes only when its project's ``serial`` does (upload, yank, status change,
removal), so a rendered page is cached in-process under ``(project, serial, format, base URL)``.
Each request still reads the serial from the shared database, so every worker sees a change at
once: the cache only saves rendering, never freshness (DESIGN.md: nothing that matters for
correctness lives in one process's memory).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import sqlalchemy as sa
from packaging.version import InvalidVersion, Version
from sqlalchemy.orm import Session

from assay.index import html, json
from assay.index.model import FileLink, ProjectLink, ProjectList, ProjectPage, ProjectStatus
from assay.index.negotiate import Format
from assay.index.paths import file_path, provenance_path, public_key
from assay.indexes import IndexRef
from assay.storage import counters
from assay.storage.changes import ProjectChange
from assay.storage.models import Counter, File, Project, Release


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    etag: str


class RenderCache:
    """A thread-safe LRU of rendered pages, bounded by the bytes it holds, so a worker's
    memory stays flat whatever the number and size of pages (the default holds both formats of
    several thousand typical projects)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._data: OrderedDict[tuple[object, ...], Rendered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> Rendered | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def drop(self, kind: str, project_id: int | None = None) -> int:
        """Remove the pages of one kind ("project": of ``project_id``; "index": the lists of
        index ``project_id``, or every list when None);
        returns how many. A scan under the lock: it runs once per committed change."""
        with self._lock:
            stale = [k for k in self._data if k[0] == kind and (project_id is None or k[1] == project_id)]
            for key in stale:
                self.size -= len(self._data.pop(key).body)
            return len(stale)

    def put(self, key: tuple[object, ...], value: Rendered) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.size -= len(old.body)
            self._data[key] = value
            self.size += len(value.body)
            while self.size > self.max_bytes and self._data:
                _, evicted = self._data.popitem(last=False)
                self.size -= len(evicted.body)


def _rendered(text: str) -> Rendered:
    body = text.encode()
    # A strong ETag: the page bytes' own digest.
    return Rendered(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:  # pragma: no cover - uploads are validated; kept for old rows
        return (0, version)


@dataclass(frozen=True, slots=True)
class ProjectHead:
    id: int
    name: str
    normalized_name: str
    status: str
    status_reason: str | None
    serial: int


#: Built once: building a select and its cache key per call costs more than running it on SQLite
#: (SQLAlchemy memoizes the cache key on the statement object).
_HEAD = sa.select(
    Project.id, Project.name, Project.normalized_name, Project.status, Project.status_reason, Project.serial
).where(Project.index_id == sa.bindparam("index_id"), Project.normalized_name == sa.bindparam("name"))
_VERSIONS = sa.select(Release.version).where(Release.project_id == sa.bindparam("project_id"))
_FILES = (
    sa.select(
        File.filename,
        File.blob_key,
        File.sha256,
        File.size,
        File.upload_time,
        File.requires_python,
        File.metadata_sha256,
        File.provenance.is_not(None),
        Release.version,
        Release.yanked,
        Release.yanked_reason,
    )
    .join(Release, File.release_id == Release.id)
    .where(File.project_id == sa.bindparam("project_id"))
)


def project_head(session: Session, index: IndexRef, normalized_name: str) -> ProjectHead | None:
    row = session.execute(_HEAD, {"index_id": index.id, "name": normalized_name}).one_or_none()
    return ProjectHead(*row) if row else None


def load_project_page(session: Session, index: IndexRef, head: ProjectHead, base_url: str) -> ProjectPage:
    """The page model of ``head``; ``base_url`` is the index's own (site base + its prefix)."""
    versions = [v for (v,) in session.execute(_VERSIONS, {"project_id": head.id})]
    versions.sort(key=_version_key)
    files: list[FileLink] = []
    # PEP 792: a quarantined project's files MUST NOT be offered for download.
    if head.status != "quarantined":
        rows = session.execute(_FILES, {"project_id": head.id}).all()
        rows = sorted(rows, key=lambda r: (_version_key(r.version), r.filename))
        for r in rows:
            yanked: bool | str = False
            if r.yanked:
                yanked = r.yanked_reason or True
            files.append(
                FileLink(
                    filename=r.filename,
                    # Relative to /simple/<project>/, so pages do not depend on the host name.
                    url="../.." + file_path(public_key(index, r.blob_key)),
                    sha256=r.sha256,
                    size=r.size,
                    upload_time=r.upload_time,
                    requires_python=r.requires_python,
                    yanked=yanked,
                    core_metadata_sha256=r.metadata_sha256,
                    # PEP 740: provenance URLs must be fully qualified.
                    provenance_url=(
                        base_url + provenance_path(head.normalized_name, r.version, r.filename) if r[7] else None
                    ),
                )
            )
    return ProjectPage(
        name=head.normalized_name,
        files=tuple(files),
        versions=tuple(versions),
        status=ProjectStatus(head.status, head.status_reason),
        serial=head.serial,
    )


def project_list_serial(session: Session, index: IndexRef) -> int:
    value = session.execute(sa.select(Counter.value).where(Counter.name == counters.projects(index.id))).scalar()
    return int(value or 0)


def load_project_list(session: Session, index: IndexRef, serial: int) -> ProjectList:
    rows = session.execute(
        sa.select(Project.name, Project.normalized_name)
        .where(Project.index_id == index.id)
        .order_by(Project.normalized_name)
    ).all()
    return ProjectList(tuple(ProjectLink(name, norm) for name, norm in rows), serial)


def project_key(project_id: int, serial: int, fmt: Format, base_url: str) -> tuple[object, ...]:
    return ("project", project_id, serial, fmt, base_url)


def index_key(index_id: int, serial: int, fmt: Format) -> tuple[object, ...]:
    # The second element is what ``RenderCache.drop`` matches: the index's id for lists.
    return ("index", index_id, serial, fmt)


class SimplePages:
    """Rendered simple pages. The caller reads the serial (``assay.index.serials``) and asks the
    cache; only on a miss is the page loaded and rendered, in one read transaction, and cached
    under the serial that transaction saw (never older than the one the caller read)."""

    def __init__(self, cache: RenderCache | None = None) -> None:
        self.cache = cache or RenderCache()

    def forget(self, change: ProjectChange) -> None:
        """A ``storage.changes`` listener: this process's pages of a changed project (and, when
        the set of projects changed, its project lists) are stale, keyed by a serial no request
        will read again; free them now. Freshness never depends on this (every request reads
        the serial), only memory does."""
        self.cache.drop("project", change.project_id)
        if change.listing_changed:
            self.cache.drop("index", change.index_id)

    def render_project(
        self, session: Session, index: IndexRef, normalized_name: str, fmt: Format, base_url: str
    ) -> Rendered | None:
        head = project_head(session, index, normalized_name)
        if head is None:
            return None
        page = load_project_page(session, index, head, base_url)
        text = json.render_project_page(page) if fmt is Format.JSON else html.render_project_page(page)
        rendered = _rendered(text)
        self.cache.put(project_key(head.id, head.serial, fmt, base_url), rendered)
        return rendered

    def render_index(self, session: Session, index: IndexRef, fmt: Format) -> Rendered:
        serial = project_list_serial(session, index)
        listing = load_project_list(session, index, serial)
        text = json.render_project_list(listing) if fmt is Format.JSON else html.render_project_list(listing)
        rendered = _rendered(text)
        self.cache.put(index_key(index.id, serial, fmt), rendered)
        return rendered
