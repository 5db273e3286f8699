"""The index's rebuild records: which file a report is about (live, or staged as its stage's
preview index shows it), recording a verified report, and listing them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from packaging.utils import InvalidName, canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version
from sqlalchemy.orm import Session

from assay.indexes import IndexRef
from assay.rebuilds.predicate import RebuildClaim
from assay.stages import store as stages
from assay.storage import releases
from assay.storage.models import File, Project, RebuildAttestation, StagedFile, utcnow


class NoSuchFile(LookupError):
    """No such file (404); the message says so."""


@dataclass(frozen=True, slots=True)
class Target:
    """The file a rebuild report is about."""

    project_id: int
    project: str
    canonical_version: str
    filename: str
    sha256: str
    packagetype: str
    #: Live on the index (False: in a stage, only seen through its preview).
    live: bool


def find(session: Session, index: IndexRef, name: str, version: str, filename: str, stage_id: str | None) -> Target:
    """The file ``filename`` of ``name`` ``version``: live, or (with ``stage_id``) in that open
    stage; through a stage's preview the live files are visible too, as on its pages."""
    missing = NoSuchFile(f"No file {filename!r} of {name} {version} on this index.")
    try:
        project = canonicalize_name(name, validate=True)
        canonical = canonicalize_version(Version(version))
    except (InvalidName, InvalidVersion):
        raise missing from None
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        raise missing  # PostgreSQL refuses a NUL in a parameter; no stored name has one
    if stage_id is not None:
        stage = stages.stage_by_id(session, stage_id)
        if stage is None or stage.index_id != index.id:
            raise NoSuchFile("No such stage (it may have been approved, rejected or expired).")
        row = session.execute(
            sa.select(
                StagedFile.filename, StagedFile.sha256, StagedFile.packagetype, Project.id, Project.normalized_name
            )
            .join(Project, Project.id == stage.project_id)
            .where(
                StagedFile.stage_id == stage.id,
                StagedFile.filename == filename,
                Project.normalized_name == project,
            )
        ).one_or_none()
        if row is not None and stage.canonical_version == canonical:
            return Target(row.id, row.normalized_name, canonical, row.filename, row.sha256, row.packagetype, False)
    columns = (File.filename, File.sha256, File.packagetype, Project.id, Project.normalized_name)
    live = releases.live_file(session, index.id, project, canonical, filename, *columns)
    if live is None:
        raise missing
    return Target(live.id, live.normalized_name, canonical, live.filename, live.sha256, live.packagetype, True)


def record(
    session: Session, index: IndexRef, target: Target, rebuilder_id: int, claim: RebuildClaim, attestation: Any
) -> RebuildAttestation:
    """A rebuilder's newest report on a file replaces its earlier one (a rebuilder that fixed
    its environment reports again); the audit log keeps every one."""
    session.execute(
        sa.delete(RebuildAttestation).where(
            RebuildAttestation.index_id == index.id,
            RebuildAttestation.filename == target.filename,
            RebuildAttestation.sha256 == target.sha256,
            RebuildAttestation.rebuilder_id == rebuilder_id,
        )
    )
    row = RebuildAttestation(
        index_id=index.id,
        project_id=target.project_id,
        canonical_version=target.canonical_version,
        filename=target.filename,
        sha256=target.sha256,
        rebuilt_sha256=claim.rebuilt_sha256,
        outcome=claim.outcome,
        rebuilder_id=rebuilder_id,
        attestation=attestation,
        created=utcnow(),
    )
    session.add(row)
    session.flush()
    return row
