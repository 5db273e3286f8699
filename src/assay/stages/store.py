"""Reading stages, and removing them (rejected or expired) with their blobs.

A stage past its ``expires`` is gone for every reader at once (each query filters on it), so
nothing depends on when the purge runs; the purge (``purge_expired``, run by the maintainers'
API and periodically by the server) then removes its rows and blobs.

Removal: the rows go in one transaction that also journals their blob keys in
``pending_blobs`` (the upload's publish journal); the blobs are deleted after the commit and
the journal entries cleared. A process killed in between leaves entries of a dead process,
which start-up recovery (``assay.storage.recovery``) finishes: no blob outlives its stage.
The filenames stay in ``used_filenames`` (PyPI never lets a filename be used twice).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from sqlalchemy.orm import Session

from assay import audit
from assay.storage.blobs import HOST, BlobStore
from assay.storage.db import Database
from assay.storage.models import PendingBlob, Project, Stage, StageApproval, StagedFile, User, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StagedFileView:
    filename: str
    packagetype: str
    size: int
    sha256: str
    blake2_256: str
    md5: str
    upload_time: dt.datetime
    triggered_by: str
    attested: bool


@dataclass(frozen=True, slots=True)
class StageView:
    id: str
    project: str
    version: str
    created: dt.datetime
    expires: dt.datetime
    files: tuple[StagedFileView, ...]
    approvers: tuple[str, ...]


def _open(now: dt.datetime) -> sa.ColumnElement[bool]:
    return Stage.expires > now


#: What ``secrets.token_urlsafe`` makes: anything else is no stage (and never reaches the database).
_STAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def stage_by_id(session: Session, stage_id: str, now: dt.datetime | None = None) -> Stage | None:
    if not _STAGE_ID.fullmatch(stage_id):
        return None
    return session.execute(sa.select(Stage).where(Stage.id == stage_id, _open(now or utcnow()))).scalar_one_or_none()


def stage_of(
    session: Session, project: Project, version: str, now: dt.datetime | None = None, *, lock: bool = False
) -> Stage | None:
    statement = sa.select(Stage).where(
        Stage.project_id == project.id,
        Stage.canonical_version == canonicalize_version(version),
        _open(now or utcnow()),
    )
    if lock:
        # PostgreSQL: a second approval of the same stage waits here, then finds it gone.
        statement = statement.with_for_update()
    return session.execute(statement).scalar_one_or_none()


def staged_files(session: Session, stage_id: str) -> list[StagedFile]:
    return list(
        session.execute(
            sa.select(StagedFile).where(StagedFile.stage_id == stage_id).order_by(StagedFile.filename)
        ).scalars()
    )


def approvers(session: Session, stage_id: str) -> list[str]:
    """Who has approved the stage so far (M of N), in order."""
    return list(
        session.execute(
            sa.select(User.username)
            .join(StageApproval, StageApproval.user_id == User.id)
            .where(StageApproval.stage_id == stage_id)
            .order_by(StageApproval.time, User.username)
        ).scalars()
    )


def view(session: Session, stage: Stage, project: str) -> StageView:
    return StageView(
        id=stage.id,
        project=project,
        version=stage.version,
        created=stage.created,
        expires=stage.expires,
        files=tuple(
            StagedFileView(
                f.filename,
                f.packagetype,
                f.size,
                f.sha256,
                f.blake2_256,
                f.md5,
                f.upload_time,
                f.triggered_by,
                f.provenance is not None,
            )
            for f in staged_files(session, stage.id)
        ),
        approvers=tuple(approvers(session, stage.id)),
    )


def project_stages(session: Session, project: Project, now: dt.datetime | None = None) -> list[StageView]:
    stages = session.execute(
        sa.select(Stage).where(Stage.project_id == project.id, _open(now or utcnow())).order_by(Stage.created)
    ).scalars()
    return [view(session, s, project.normalized_name) for s in stages]


def drop_stage(session: Session, stage: Stage) -> list[str]:
    """Delete ``stage`` and its files' rows in the caller's transaction, journalling their blob
    keys; returns the keys, for ``remove_blobs`` after the commit."""
    keys: list[str] = []
    for f in staged_files(session, stage.id):
        keys.append(f.blob_key)
        if f.metadata_blob_key:
            keys.append(f.metadata_blob_key)
    for key in keys:
        session.merge(PendingBlob(key=key, host=HOST, pid=os.getpid(), created=utcnow()))
    delete_rows(session, stage)
    return keys


def delete_rows(session: Session, stage: Stage) -> None:
    """The stage's rows (approval keeps the blobs: the new ``files`` rows own them)."""
    session.execute(sa.delete(StageApproval).where(StageApproval.stage_id == stage.id))
    session.execute(sa.delete(StagedFile).where(StagedFile.stage_id == stage.id))
    session.execute(sa.delete(Stage).where(Stage.id == stage.id))


def remove_blobs(db: Database, blobs: BlobStore, keys: list[str]) -> None:
    """After the rows' commit: delete the blobs and clear their journal entries. What fails
    here (the store or the database away) is finished by start-up recovery."""
    for key in keys:
        try:
            blobs.delete(key)
            with db.write() as session:
                session.execute(sa.delete(PendingBlob).where(PendingBlob.key == key))
        except Exception as exc:
            log.warning("could not yet remove blob %s of a removed stage (recovery will): %s", key, exc)


def purge_expired(db: Database, blobs: BlobStore, now: dt.datetime | None = None) -> int:
    """Remove every expired stage (rows, then blobs), each with a ``stage:expire`` audit event;
    returns how many."""
    moment = now or utcnow()
    with db.read() as session:
        expired = list(session.execute(sa.select(Stage.id).where(Stage.expires <= moment)).scalars())
    removed = 0
    for stage_id in expired:
        with db.write() as session:
            # Locked: an upload adding a file to it (which takes a key-share lock on the row)
            # either commits first, and its file goes with the stage, or waits and then finds
            # the stage gone (its insert fails, and the upload's retry reports it).
            stage = session.execute(sa.select(Stage).where(Stage.id == stage_id).with_for_update()).scalar()
            if stage is None or stage.expires > moment:
                continue  # another process purged (or approval took) it
            project = session.get(Project, stage.project_id)
            files = [f.filename for f in staged_files(session, stage.id)]
            keys = drop_stage(session, stage)
            audit.record(
                session,
                actor="system:stage-expiry",
                action="stage:expire",
                project=project.normalized_name if project else None,
                target=stage.version,
                details={"stage": stage.id, "files": files, "expired": stage.expires.isoformat()},
            )
        remove_blobs(db, blobs, keys)
        removed += 1
    if removed:
        log.info("removed %d expired stage(s)", removed)
    return removed
