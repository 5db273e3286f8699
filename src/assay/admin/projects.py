"""Yank and unyank (PEP 592), project status (PEP 792), removing files and releases."""

from __future__ import annotations

import sqlalchemy as sa
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version
from sqlalchemy.orm import Session

from assay import audit
from assay.admin import AdminError
from assay.log import entries as log_entries
from assay.log import store as translog
from assay.storage.blobs import BlobStore
from assay.storage.changes import project_changed
from assay.storage.db import Database
from assay.storage.models import (
    DEFAULT_INDEX_ID,
    File,
    Project,
    PublisherProject,
    Release,
    Stage,
    StagedFile,
    utcnow,
)

#: PEP 792's statuses.
STATUSES = ("active", "archived", "quarantined", "deprecated")


def _project(session: Session, name: str, index_id: int) -> Project:
    normalized = canonicalize_name(name)
    project = session.execute(
        sa.select(Project).where(Project.index_id == index_id, Project.normalized_name == normalized)
    ).scalar_one_or_none()
    if project is None:
        raise AdminError(f"no project named {normalized!r}")
    return project


def _release(session: Session, project: Project, version: str) -> Release:
    try:
        canonical = canonicalize_version(Version(version))
    except InvalidVersion:
        raise AdminError(f"invalid version {version!r}") from None
    release = session.execute(
        sa.select(Release).where(Release.project_id == project.id, Release.canonical_version == canonical)
    ).scalar_one_or_none()
    if release is None:
        raise AdminError(f"project {project.normalized_name!r} has no release {version!r}")
    return release


def _touch(session: Session, project: Project) -> None:
    project_changed(session, project, listing_changed=False)


def yank(
    db: Database, name: str, version: str, reason: str | None, *, actor: str, index_id: int = DEFAULT_INDEX_ID
) -> None:
    """PEP 592: the release stays downloadable; resolvers skip it unless pinned exactly."""
    with db.write() as session:
        project = _project(session, name, index_id)
        release = _release(session, project, version)
        release.yanked = True
        release.yanked_reason = reason or None
        _touch(session, project)
        audit.record(
            session,
            actor=actor,
            action="release:yank",
            project=project.normalized_name,
            target=release.version,
            details={"reason": reason},
        )
        translog.append(
            session,
            project.index_id,
            log_entries.yank(project.normalized_name, release.version, reason, yanked=True, when=utcnow()),
        )


def unyank(db: Database, name: str, version: str, *, actor: str, index_id: int = DEFAULT_INDEX_ID) -> None:
    with db.write() as session:
        project = _project(session, name, index_id)
        release = _release(session, project, version)
        release.yanked = False
        release.yanked_reason = None
        _touch(session, project)
        audit.record(
            session, actor=actor, action="release:unyank", project=project.normalized_name, target=release.version
        )
        translog.append(
            session,
            project.index_id,
            log_entries.yank(project.normalized_name, release.version, None, yanked=False, when=utcnow()),
        )


def set_status(
    db: Database, name: str, status: str, reason: str | None, *, actor: str, index_id: int = DEFAULT_INDEX_ID
) -> None:
    if status not in STATUSES:
        raise AdminError(f"invalid status {status!r}: use one of {', '.join(STATUSES)} (PEP 792)")
    with db.write() as session:
        project = _project(session, name, index_id)
        previous = project.status
        project.status = status
        project.status_reason = reason or None
        _touch(session, project)
        audit.record(
            session,
            actor=actor,
            action="project:status",
            project=project.normalized_name,
            details={"from": previous, "to": status, "reason": reason},
        )
        translog.append(
            session, project.index_id, log_entries.status(project.normalized_name, status, reason, when=utcnow())
        )


def _delete_blobs(blobs: BlobStore, keys: list[str]) -> None:
    # After the rows are gone (committed), the blobs are unreachable; remove them.
    for key in keys:
        blobs.delete(key)


def remove_file(db: Database, blobs: BlobStore, filename: str, *, actor: str, index_id: int = DEFAULT_INDEX_ID) -> None:
    """Remove one file. Its filename stays used (PyPI never allows a filename twice)."""
    with db.write() as session:
        row = session.execute(
            sa.select(File).where(File.index_id == index_id, File.filename == filename)
        ).scalar_one_or_none()
        if row is None:
            raise AdminError(f"no file named {filename!r}")
        project = session.get(Project, row.project_id)
        assert project is not None
        keys = [row.blob_key] + ([row.metadata_blob_key] if row.metadata_blob_key else [])
        removed = translog.removals(session, [row], project.normalized_name)
        session.delete(row)
        _touch(session, project)
        audit.record(
            session,
            actor=actor,
            action="file:remove",
            project=project.normalized_name,
            target=filename,
            details={"sha256": row.sha256},
        )
        translog.append_all(session, project.index_id, removed)
    _delete_blobs(blobs, keys)


def remove_release(
    db: Database, blobs: BlobStore, name: str, version: str, *, actor: str, index_id: int = DEFAULT_INDEX_ID
) -> list[str]:
    with db.write() as session:
        project = _project(session, name, index_id)
        release = _release(session, project, version)
        files = list(session.execute(sa.select(File).where(File.release_id == release.id)).scalars())
        keys = [k for f in files for k in (f.blob_key, f.metadata_blob_key) if k]
        logged = translog.removals(session, files, project.normalized_name)
        for f in files:
            session.delete(f)
        session.delete(release)
        _touch(session, project)
        audit.record(
            session,
            actor=actor,
            action="release:remove",
            project=project.normalized_name,
            target=release.version,
            details={"files": [f.filename for f in files]},
        )
        translog.append_all(session, project.index_id, logged)
        removed = [f.filename for f in files]
    _delete_blobs(blobs, keys)
    return removed


def remove_project(
    db: Database, blobs: BlobStore, name: str, *, actor: str, index_id: int = DEFAULT_INDEX_ID
) -> list[str]:
    with db.write() as session:
        project = _project(session, name, index_id)
        files = list(session.execute(sa.select(File).where(File.project_id == project.id)).scalars())
        keys = [k for f in files for k in (f.blob_key, f.metadata_blob_key) if k]
        # Issue 14: its stages go with it (the rows by cascade), and their blobs.
        keys += [
            k
            for blob, meta in session.execute(
                sa.select(StagedFile.blob_key, StagedFile.metadata_blob_key)
                .join(Stage, Stage.id == StagedFile.stage_id)
                .where(Stage.project_id == project.id)
            )
            for k in (blob, meta)
            if k
        ]
        # Before the row goes: the change is recorded against the project it was.
        project_changed(session, project, listing_changed=True)
        session.execute(sa.delete(PublisherProject).where(PublisherProject.project_id == project.id))
        logged = translog.removals(session, files, project.normalized_name)
        for f in files:
            session.delete(f)
        for r in session.execute(sa.select(Release).where(Release.project_id == project.id)).scalars():
            session.delete(r)
        session.delete(project)
        audit.record(
            session,
            actor=actor,
            action="project:remove",
            project=project.normalized_name,
            details={"files": [f.filename for f in files]},
        )
        translog.append_all(session, project.index_id, logged)
        removed = [f.filename for f in files]
    _delete_blobs(blobs, keys)
    return removed


#: Issue 14: how a project's uploads go live.
RELEASE_MODES = ("direct", "staged")
#: M of N: at most this many owners may be required to approve a stage.
MAX_APPROVALS = 10


def set_releases(
    db: Database,
    name: str,
    *,
    mode: str | None,
    four_eyes: bool | None,
    actor: str,
    index_id: int = DEFAULT_INDEX_ID,
    approvals: int | None = None,
) -> tuple[str, bool, int]:
    """``--releases staged|direct`` and ``--four-eyes``; returns the settings now in force.
    Stages already open stay open either way (approve or reject them)."""
    if mode is not None and mode not in RELEASE_MODES:
        raise AdminError(f"invalid release mode {mode!r}: use one of {', '.join(RELEASE_MODES)}")
    if approvals is not None and not 1 <= approvals <= MAX_APPROVALS:
        raise AdminError(f"--approvals must be between 1 and {MAX_APPROVALS}, got {approvals}")
    with db.write() as session:
        project = _project(session, name, index_id)
        def settings() -> dict[str, object]:
            return {
                "releases": project.releases_mode,
                "four_eyes": project.four_eyes,
                "approvals": project.approvals_required,
            }

        before = settings()
        if mode is not None:
            project.releases_mode = mode
        if four_eyes is not None:
            project.four_eyes = four_eyes
        if approvals is not None:
            project.approvals_required = approvals
        after = settings()
        audit.record(
            session,
            actor=actor,
            action="project:set",
            project=project.normalized_name,
            details={"before": before, "after": after},
        )
        return project.releases_mode, project.four_eyes, project.approvals_required
