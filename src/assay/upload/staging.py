"""Issue 14: an upload to a staged project (or by a stage-only publisher) lands in a stage.

The blobs are published under their final keys exactly as for a live file, but the rows go to
``stages`` / ``staged_files``, which no read path of the index looks at: the file is absent
from the simple pages, the JSON API, the web pages and the log until an owner approves the
stage (``assay.stages.actions``). Its filename goes into ``used_filenames`` at once, so it is
reserved, and, as PyPI never reuses a filename, stays used even if the stage is rejected.
"""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from sqlalchemy.orm import Session

from assay import audit
from assay.accounts.auth import Principal
from assay.storage.models import Project, Publisher, Stage, StagedFile, UsedFilename, utcnow


class StageExpired(Exception):
    """The release's stage has expired (and is waiting for its purge)."""


def goes_to_stage(session: Session, who: Principal, project: Project | None) -> bool:
    """A staged project's uploads, and every upload of a stage-only publisher, are staged."""
    if project is not None and project.releases_mode == "staged":
        return True
    if who.publisher_id is not None:
        return bool(session.execute(sa.select(Publisher.stage_only).where(Publisher.id == who.publisher_id)).scalar())
    return False


def triggered_by(who: Principal) -> str:
    """The person behind an upload, for four eyes: the uploading user, or the CI token's actor
    claim (GitHub's ``actor``, GitLab's ``user_login``), else the publisher itself."""
    claims = who.oidc_claims or {}
    login = claims.get("actor") or claims.get("user_login")
    if who.kind == "publisher" and isinstance(login, str) and login:
        return f"ci:{login}"
    return who.actor


def staged_duplicate(session: Session, index_id: int, filename: str, sha256: str) -> StagedFile | None:
    """The staged file with this name, or with these bytes under another name (the caller
    decides: the same name and bytes is an idempotent re-upload, anything else a conflict)."""
    return (
        session.execute(
            sa.select(StagedFile).where(
                StagedFile.index_id == index_id, sa.or_(StagedFile.filename == filename, StagedFile.sha256 == sha256)
            )
        )
        .scalars()
        .first()
    )


def staged_sdist_of_release(session: Session, project_id: int, version: str) -> str | None:
    """The sdist in the stage of ``project_id``'s release ``version``, if any."""
    return session.execute(
        sa.select(StagedFile.filename)
        .join(Stage, Stage.id == StagedFile.stage_id)
        .where(
            Stage.project_id == project_id,
            Stage.canonical_version == canonicalize_version(version),
            StagedFile.packagetype == "sdist",
        )
    ).scalar()


def open_stage(session: Session, project: Project, version: str, ttl: float) -> Stage:
    """The open stage of ``project``'s release ``version``, created if there is none (one per
    release: a wheel and the sdist uploaded one after the other land in the same stage)."""
    canonical = canonicalize_version(version)
    stage = session.execute(
        sa.select(Stage).where(Stage.project_id == project.id, Stage.canonical_version == canonical)
    ).scalar_one_or_none()
    now = utcnow()
    if stage is not None and stage.expires <= now:
        # Expired but not yet purged: it can take no more files (the purge removes it).
        raise StageExpired(
            f"The stage of {project.normalized_name} {version} has expired and is being removed; upload a new version."
        )
    if stage is None:
        stage = Stage(
            # 192 bits: the preview URL is a capability (PEP 694's session URLs are too).
            id=secrets.token_urlsafe(24),
            index_id=project.index_id,
            project_id=project.id,
            version=version,
            canonical_version=canonical,
            created=now,
            expires=now + dt.timedelta(seconds=ttl),
        )
        session.add(stage)
        session.flush()
    return stage


def add_staged_file(session: Session, stage: Stage, row: StagedFile) -> None:
    """The file joins its stage; its filename is used from now on (reserved, never reused)."""
    row.stage_id = stage.id
    session.add(row)
    session.add(UsedFilename(index_id=stage.index_id, filename=row.filename))


def record(
    session: Session, stage: Stage, row: StagedFile, who: Principal, remote_addr: str | None, project: str
) -> None:
    audit.record(
        session,
        actor=who.actor,
        action="stage:upload",
        project=project,
        target=row.filename,
        token_id=who.token_id,
        remote_addr=remote_addr,
        details={
            "stage": stage.id,
            "version": stage.version,
            "sha256": row.sha256,
            "size": row.size,
            "triggered_by": row.triggered_by,
        },
    )
