"""Indexes (issue 11, part 3): create, list, show and delete them.

A new index starts empty, with its own (empty) transparency log; deleting one removes its
projects, files, tokens, publishers and log with it (``ON DELETE CASCADE``), then its blobs.
The default index, at the site root, can be neither created nor deleted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

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


def _mirror_url(url: str) -> str:
    """An upstream simple index's URL: http(s), with a host, ending in "/" (a project's page
    is ``<url><project>/``, PEP 503)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise AdminError(f"--mirror must be an http(s) URL of a simple index (e.g. https://host/simple/), got {url!r}")
    return url if url.endswith("/") else url + "/"


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
    mirror_url: str | None = None
    bases: tuple[str, ...] = ()


def create_index(
    db: Database,
    name: str,
    *,
    description: str = "",
    private: bool | None = None,
    audience: str | None = None,
    mirror: str | None = None,
    bases: Sequence[str] = (),
    actor: str,
) -> None:
    """Create an index: hosted (uploads), a mirror of the simple index at ``mirror`` (no
    uploads; issue 12), or hosted and layered over the mirror indexes ``bases``."""
    try:
        check_name(name)
    except IndexNameError as exc:
        raise AdminError(str(exc)) from None
    if audience is not None and not audience.strip():
        raise AdminError("--audience must not be empty")
    if mirror is not None and bases:
        raise AdminError("an index is a mirror (--mirror) or layered over mirrors (--bases), not both")
    mirror = _mirror_url(mirror) if mirror is not None else None
    try:
        with db.write() as session:
            for base in bases:
                found = session.execute(
                    sa.select(PackageIndex.mirror_url).where(PackageIndex.name == base)
                ).one_or_none()
                if found is None:
                    raise AdminError(f"--bases: no index named {base!r}")
                if found.mirror_url is None:
                    raise AdminError(f"--bases: {base!r} is not a mirror index (create it with --mirror URL)")
            if len(set(bases)) != len(bases):
                raise AdminError("--bases names an index twice")
            row = PackageIndex(
                name=name,
                description=description,
                private=private,
                audience=audience,
                mirror_url=mirror,
                bases=list(bases) or None,
            )
            session.add(row)
            session.flush()
            session.add(LogState(id=row.id, size=0))  # its own log, empty
            audit.record(
                session,
                actor=actor,
                action="index:create",
                target=name,
                details={"private": private, "audience": audience, "mirror": mirror, "bases": list(bases)},
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
                r.mirror_url,
                tuple(r.bases or ()),
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
        layered = [
            other
            for other, bases in session.execute(sa.select(PackageIndex.name, PackageIndex.bases))
            if bases and name in bases
        ]
        if layered:
            raise AdminError(f"index {name!r} is a base of {', '.join(sorted(layered))}: delete or change those first")
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
