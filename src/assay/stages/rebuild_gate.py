"""Issue 14, item 4: a stage of a project that requires K rebuilds (``assay admin project set
NAME --rebuilds K``) may be approved only once K distinct rebuilders, registered now, have
each reported a byte-for-byte match for every wheel of the stage (the wheels are what is
built from the sdist; the sdist itself is the source, not rebuilt). A stage without wheels
has nothing to reproduce. Read from the rows ``assay.rebuilds`` records."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assay.storage.models import Project, RebuildAttestation, Rebuilder, StagedFile


def unreproduced(session: Session, project: Project, files: list[StagedFile]) -> list[str]:
    """Why the stage may not be approved yet: one line per wheel short of the project's K
    matching rebuilders (empty: it may)."""
    required = project.rebuilds_required
    if required <= 0:
        return []
    wheels = [f for f in files if f.packagetype == "bdist_wheel"]
    if not wheels:
        return []
    rows = session.execute(
        sa.select(RebuildAttestation.filename, RebuildAttestation.sha256, RebuildAttestation.rebuilder_id)
        .join(Rebuilder, Rebuilder.id == RebuildAttestation.rebuilder_id)
        .where(
            RebuildAttestation.index_id == project.index_id,
            RebuildAttestation.outcome == "match",
            Rebuilder.project_id == project.id,
            RebuildAttestation.filename.in_([f.filename for f in wheels]),
        )
    ).all()
    matched: dict[tuple[str, str], set[int]] = {}
    for filename, sha256, rebuilder_id in rows:
        matched.setdefault((filename, sha256), set()).add(rebuilder_id)
    short = []
    for f in sorted(wheels, key=lambda f: f.filename):
        n = len(matched.get((f.filename, f.sha256), set()))
        if n < required:
            short.append(f"{f.filename}: reproduced by {n} of the {required} rebuilders required")
    return short
