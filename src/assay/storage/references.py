"""Whether a row owns a blob: the one question every clean-up asks before removing a blob
(an upload's undo, start-up recovery). A blob is owned by a live file, a staged file (issue 14:
a stage's files keep their final keys until approval or rejection) or a mirrored one."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assay.storage.models import File, MirrorFile, MirrorMetadata, StagedFile


def blob_referenced(session: Session, key: str) -> bool:
    for statement in (
        sa.select(File.id).where(sa.or_(File.blob_key == key, File.metadata_blob_key == key)),
        sa.select(StagedFile.id).where(sa.or_(StagedFile.blob_key == key, StagedFile.metadata_blob_key == key)),
        sa.select(MirrorFile.id).where(sa.or_(MirrorFile.blob_key == key, MirrorFile.metadata_blob_key == key)),
        sa.select(MirrorMetadata.id).where(MirrorMetadata.blob_key == key),
    ):
        if session.execute(statement).first() is not None:
            return True
    return False
