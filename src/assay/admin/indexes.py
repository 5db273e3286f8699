"""Indexes (issue 11, part 3): create, list, show and delete them.

A new index starts empty, with its own (empty) transparency log; deleting one removes its
projects, files, tokens, publishers and log with it (``ON DELETE CASCADE``), then its blobs.
The default index, at the site root, can be neither created nor deleted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from assay import audit
from assay.admin import AdminError
from assay.indexes import IndexNameError, check_name
from assay.storage.blobs import BlobStore
from assay.storage.db import Database
from assay.storage.models import (
    DEFAULT_INDEX_ID,
    DEFAULT_INDEX_NAME,
    ApiToken,
    File,
    LogState,
    PackageIndex,
    Project,
    Publisher,
    StagedFile,
)


@dataclass(frozen=True)
class IndexInfo:
    name: str
    description: str
    private: bool | None
    audience: str | None
    created: dt.datetime
    projects: int
    files: int
    tokens: int
    publishers: int
    #: The index's path below the site root ("" for the default).
    prefix: str


def create_index(
    db: Database,
    name: str,
    *,
    description: str = "",
    private: bool | None = None,
    audience: str | None = None,
    actor: str,
) -> None:
    try:
        check_name(name)
    except IndexNameError as exc:
        raise AdminError(str(exc)) from None
    if audience is not None and not audience.strip():
        raise AdminError("--audience must not be empty")
    try:
        with db.write() as session:
            row = PackageIndex(name=name, description=description, private=private, audience=audience)
            session.add(row)
            session.flush()
            session.add(LogState(id=row.id, size=0))  # its own log, empty
            audit.record(
                session,
                actor=actor,
                action="index:create",
                target=name,
                details={"private": private, "audience": audience},
            )
    except IntegrityError:
        raise AdminError(f"index {name!r} already exists") from None


def _count(session: Session, column: InstrumentedAttribute[int], index_id: int) -> int:
    return int(session.execute(sa.select(sa.func.count()).where(column == index_id)).scalar() or 0)


def list_indexes(db: Database) -> list[IndexInfo]:
    with db.read() as session:
        rows = list(session.execute(sa.select(PackageIndex).order_by(PackageIndex.id)).scalars())
        return [
            IndexInfo(
                r.name,
                r.description,
                r.private,
                r.audience,
                r.created,
                _count(session, Project.index_id, r.id),
                _count(session, File.index_id, r.id),
                _count(session, ApiToken.index_id, r.id),
                _count(session, Publisher.index_id, r.id),
                "" if r.id == DEFAULT_INDEX_ID else f"/{r.name}",
            )
            for r in rows
        ]


def show_index(db: Database, name: str) -> IndexInfo:
    for info in list_indexes(db):
        if info.name == name:
            return info
    raise AdminError(f"no index named {name!r}")


def delete_index(db: Database, blobs: BlobStore, name: str, *, actor: str) -> int:
    """Delete the index ``name`` and everything in it; returns how many files went."""
    if name == DEFAULT_INDEX_NAME:
        raise AdminError("the default index cannot be deleted")
    with db.write() as session:
        row = session.execute(sa.select(PackageIndex).where(PackageIndex.name == name)).scalar_one_or_none()
        if row is None:
            raise AdminError(f"no index named {name!r}")
        keys = [
            k
            for statement in (
                sa.select(File.blob_key, File.metadata_blob_key).where(File.index_id == row.id),
                # Issue 14: its stages' files too.
                sa.select(StagedFile.blob_key, StagedFile.metadata_blob_key).where(StagedFile.index_id == row.id),
            )
            for blob, meta in session.execute(statement)
            for k in (blob, meta)
            if k
        ]
        session.delete(row)  # the database cascades to its projects, files, tokens, publishers, log
        audit.record(session, actor=actor, action="index:delete", target=name, details={"files": len(keys)})
    # After the commit: the rows are gone, so no request can be served these blobs any more.
    for key in keys:
        blobs.delete(key)
    return sum(1 for k in keys if not k.endswith(".metadata"))
