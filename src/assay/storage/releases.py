"""A project's release of one version, as an upload and a stage going live both need it:
found by its PEP 440 canonical form (``1.0`` and ``1.0.0`` are one release, as on PyPI), and
created with its first file, taking that file's ``Requires-Python`` and core metadata."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from sqlalchemy.orm import Session

from assay.storage.models import Release


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
