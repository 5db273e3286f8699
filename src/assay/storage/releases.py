"""A project's release of one version, as an upload and a stage going live both need it:
found by its PEP 440 canonical form (``1.0`` and ``1.0.0`` are one release, as on PyPI), and
created with its first file, taking that file's ``Requires-Python`` and core metadata; and
one live file of a release, as the provenance endpoint and a rebuild report look it up."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from sqlalchemy.engine import Row
from sqlalchemy.orm import InstrumentedAttribute, Session

from assay.storage.models import File, Project, Release


def find(session: Session, project_id: int, version: str) -> Release | None:
    canonical = canonicalize_version(version)
    return session.execute(
        sa.select(Release).where(Release.project_id == project_id, Release.canonical_version == canonical)
    ).scalar_one_or_none()


def create(
    session: Session, project_id: int, version: str, *, requires_python: str | None, core_metadata: dict[str, Any]
) -> Release:
    """A new release (flushed: its id is there for the file rows)."""
    release = Release(
        project_id=project_id,
        version=version,
        canonical_version=canonicalize_version(version),
        requires_python=requires_python,
        core_metadata=core_metadata,
    )
    session.add(release)
    session.flush()
    return release


def live_file(
    session: Session,
    index_id: int,
    project: str,
    canonical_version: str,
    filename: str,
    *columns: InstrumentedAttribute[Any],
) -> Row[*tuple[Any, ...]] | None:
    """``columns`` (of ``File``, ``Project``, ``Release``) of the live file ``filename`` of the
    normalized ``project``'s release ``canonical_version`` on the index, or None; also None for
    a quarantined project, of which nothing is offered (PEP 792)."""
    row = session.execute(
        sa.select(*columns, Project.status)
        .join(Release, File.release_id == Release.id)
        .join(Project, File.project_id == Project.id)
        .where(
            File.index_id == index_id,
            File.filename == filename,
            Project.normalized_name == project,
            Release.canonical_version == canonical_version,
        )
    ).one_or_none()
    return None if row is None or row.status == "quarantined" else row
