"""The rebuilders a project trusts (``assay admin rebuilder add|list|remove``) and how many of
them a stage needs (``assay admin project set NAME --rebuilds K``)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa
from packaging.utils import canonicalize_name
from sqlalchemy.orm import Session

from assay import audit
from assay.admin import AdminError
from assay.publishers.base import IdentityError
from assay.publishers.maintainer import check_value
from assay.storage.db import Database
from assay.storage.models import Project, Rebuilder

#: At most this many rebuilders may be required of a stage (as ``--approvals``' ten).
MAX_REBUILDS = 10


@dataclass(frozen=True, slots=True)
class RebuilderView:
    id: int
    issuer: str
    identity: str
    #: "email" or "subject".
    kind: str

    def to_json(self) -> dict[str, str]:
        return {"issuer": self.issuer, self.kind: self.identity}

    def summary(self) -> str:
        return f"{self.identity} ({self.issuer})"


def view(row: Rebuilder) -> RebuilderView:
    return RebuilderView(row.id, row.issuer, row.identity, row.identity_kind)


def _project(session: Session, name: str, index_id: int) -> Project:
    project = session.execute(
        sa.select(Project).where(Project.index_id == index_id, Project.normalized_name == canonicalize_name(name))
    ).scalar_one_or_none()
    if project is None:
        raise AdminError(f"no project named {canonicalize_name(name)!r}")
    return project


def _identity(issuer: str, email: str | None, subject: str | None) -> tuple[str, str]:
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise AdminError(f"--issuer must be the OIDC issuer's URL, got {issuer!r}")
    if (email is None) == (subject is None):
        raise AdminError("give exactly one of --email and --subject (the certificate's SubjectAlternativeName)")
    kind, value = ("email", email) if email is not None else ("subject", subject or "")
    if any(c.isspace() for c in value):
        raise AdminError(f"--{kind} must be the certificate's {kind} (no spaces), got {value!r}")
    try:
        # The same rules as a maintainer's identity: an e-mail is kept lower-cased, as the
        # certificate check compares it without case.
        return check_value(kind, value), kind
    except IdentityError as exc:
        raise AdminError(f"--{kind}: {exc}") from None


def add(
    db: Database, name: str, *, issuer: str, email: str | None, subject: str | None, actor: str, index_id: int
) -> RebuilderView:
    identity, kind = _identity(issuer, email, subject)
    with db.write() as session:
        project = _project(session, name, index_id)
        existing = session.execute(
            sa.select(Rebuilder).where(
                Rebuilder.project_id == project.id, Rebuilder.issuer == issuer, Rebuilder.identity == identity
            )
        ).scalar_one_or_none()
        if existing is not None:
            raise AdminError(f"{identity} ({issuer}) is a rebuilder of {project.normalized_name!r} already")
        row = Rebuilder(
            index_id=project.index_id, project_id=project.id, issuer=issuer, identity=identity, identity_kind=kind
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="rebuilder:add",
            project=project.normalized_name,
            details={"issuer": issuer, kind: identity},
        )
        return view(row)


def listing(db: Database, name: str, *, index_id: int) -> list[RebuilderView]:
    with db.read() as session:
        project = _project(session, name, index_id)
        return of_project(session, project.id)


def of_project(session: Session, project_id: int) -> list[RebuilderView]:
    rows = session.execute(
        sa.select(Rebuilder).where(Rebuilder.project_id == project_id).order_by(Rebuilder.id)
    ).scalars()
    return [view(r) for r in rows]


def remove(
    db: Database, name: str, *, issuer: str, email: str | None, subject: str | None, actor: str, index_id: int
) -> None:
    """Remove a rebuilder; its reports go with it (they no longer count, and are not listed)."""
    identity, kind = _identity(issuer, email, subject)
    with db.write() as session:
        project = _project(session, name, index_id)
        row = session.execute(
            sa.select(Rebuilder).where(
                Rebuilder.project_id == project.id, Rebuilder.issuer == issuer, Rebuilder.identity == identity
            )
        ).scalar_one_or_none()
        if row is None:
            raise AdminError(f"{identity} ({issuer}) is not a rebuilder of {project.normalized_name!r}")
        session.delete(row)
        audit.record(
            session,
            actor=actor,
            action="rebuilder:remove",
            project=project.normalized_name,
            details={"issuer": issuer, kind: identity},
        )


def set_required(db: Database, name: str, count: int, *, actor: str, index_id: int) -> int:
    if not 0 <= count <= MAX_REBUILDS:
        raise AdminError(f"--rebuilds must be between 0 and {MAX_REBUILDS}, got {count}")
    with db.write() as session:
        project = _project(session, name, index_id)
        before = project.rebuilds_required
        project.rebuilds_required = count
        audit.record(
            session,
            actor=actor,
            action="project:set",
            project=project.normalized_name,
            details={"before": {"rebuilds": before}, "after": {"rebuilds": count}},
        )
        return count
