"""Maintainer identities (issue 14, item 3): which Sigstore identities may sign a project's
token uploads (``assay admin maintainer add|list|remove``)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assay import audit
from assay.admin import AdminError
from assay.admin.projects import _project
from assay.publishers.base import IdentityError, https_url
from assay.publishers.maintainer import Maintainer
from assay.storage.db import Database
from assay.storage.models import DEFAULT_INDEX_ID, MaintainerIdentity, Project


@dataclass(frozen=True)
class Registered:
    id: int
    identity: Maintainer
    added: str


def _identity(issuer: str, identity_kind: str, value: str) -> Maintainer:
    try:
        issuer = https_url(issuer, "--issuer")
        return Maintainer.of(issuer, identity_kind, value)
    except (IdentityError, ValueError) as exc:
        raise AdminError(str(exc)) from None


def registered(session: Session, project_id: int) -> list[Maintainer]:
    """The project's maintainer identities, oldest first (what a token upload's attestations
    are checked against, ``assay.attestations.upload``)."""
    rows = session.execute(
        sa.select(MaintainerIdentity).where(MaintainerIdentity.project_id == project_id).order_by(MaintainerIdentity.id)
    ).scalars()
    return [Maintainer.of(r.issuer, r.identity_kind, r.value) for r in rows]


def add(
    db: Database,
    name: str,
    *,
    issuer: str,
    identity_kind: str,
    value: str,
    actor: str,
    index_id: int = DEFAULT_INDEX_ID,
) -> Maintainer:
    identity = _identity(issuer, identity_kind, value)
    with db.write() as session:
        project = _project(session, name, index_id)
        exists = session.execute(
            sa.select(MaintainerIdentity.id).where(
                MaintainerIdentity.project_id == project.id,
                MaintainerIdentity.issuer == identity.issuer,
                MaintainerIdentity.identity_kind == identity.identity_kind,
                MaintainerIdentity.value == identity.value,
            )
        ).first()
        if exists is not None:
            raise AdminError(f"{identity.summary()} is already a maintainer of {project.normalized_name}")
        session.add(
            MaintainerIdentity(
                index_id=project.index_id,
                project_id=project.id,
                issuer=identity.issuer,
                identity_kind=identity.identity_kind,
                value=identity.value,
            )
        )
        audit.record(
            session,
            actor=actor,
            action="maintainer:add",
            project=project.normalized_name,
            details=identity.to_publisher(),
        )
    return identity


def list_identities(db: Database, name: str, *, index_id: int = DEFAULT_INDEX_ID) -> tuple[Project, list[Registered]]:
    with db.read() as session:
        project = _project(session, name, index_id)
        rows = session.execute(
            sa.select(MaintainerIdentity)
            .where(MaintainerIdentity.project_id == project.id)
            .order_by(MaintainerIdentity.id)
        ).scalars()
        return project, [
            Registered(r.id, Maintainer.of(r.issuer, r.identity_kind, r.value), r.added.isoformat()) for r in rows
        ]


def remove(
    db: Database,
    name: str,
    *,
    issuer: str,
    identity_kind: str,
    value: str,
    actor: str,
    index_id: int = DEFAULT_INDEX_ID,
) -> Maintainer:
    identity = _identity(issuer, identity_kind, value)
    with db.write() as session:
        project = _project(session, name, index_id)
        row = session.execute(
            sa.select(MaintainerIdentity).where(
                MaintainerIdentity.project_id == project.id,
                MaintainerIdentity.issuer == identity.issuer,
                MaintainerIdentity.identity_kind == identity.identity_kind,
                MaintainerIdentity.value == identity.value,
            )
        ).scalar_one_or_none()
        if row is None:
            raise AdminError(f"{identity.summary()} is not a maintainer of {project.normalized_name}")
        session.delete(row)
        audit.record(
            session,
            actor=actor,
            action="maintainer:remove",
            project=project.normalized_name,
            details=identity.to_publisher(),
        )
    return identity
