"""Users, project roles and API tokens."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import sqlalchemy as sa
from packaging.utils import canonicalize_name
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assay import audit
from assay.accounts import tokens, totp
from assay.admin import AdminError
from assay.storage.changes import project_changed
from assay.storage.db import Database
from assay.storage.models import DEFAULT_INDEX_ID, ApiToken, Project, Role, User, utcnow

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ROLES = ("owner", "maintainer")


def _user(session: Session, username: str) -> User:
    user = session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise AdminError(f"no user named {username!r}")
    return user


def _project(session: Session, name: str, index_id: int) -> Project:
    normalized = canonicalize_name(name)
    project = session.execute(
        sa.select(Project).where(Project.index_id == index_id, Project.normalized_name == normalized)
    ).scalar_one_or_none()
    if project is None:
        raise AdminError(f"no project named {normalized!r}")
    return project


def create_user(db: Database, username: str, *, actor: str) -> None:
    if not _USERNAME.match(username):
        raise AdminError(
            f"invalid username {username!r}: use letters, digits, '.', '_' and '-' (at most 100)"
        )
    try:
        with db.write() as session:
            session.add(User(username=username))
            audit.record(session, actor=actor, action="user:create", target=username)
    except IntegrityError:
        raise AdminError(f"user {username!r} already exists") from None


def list_users(db: Database) -> list[tuple[str, dt.datetime]]:
    with db.read() as session:
        return [(u, c) for u, c in session.execute(sa.select(User.username, User.created).order_by(User.username))]


def create_project(db: Database, name: str, *, owner: str, actor: str, index_id: int = DEFAULT_INDEX_ID) -> str:
    """Create an empty project (so tokens and publishers can be scoped to it before the first upload)."""
    normalized = canonicalize_name(name)
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
        raise AdminError(f"invalid project name {name!r} (see the name normalization spec)")
    try:
        with db.write() as session:
            user = _user(session, owner)
            project = Project(index_id=index_id, name=name, normalized_name=normalized)
            session.add(project)
            session.flush()
            session.add(Role(project_id=project.id, user_id=user.id, role="owner"))
            project_changed(session, project, listing_changed=True)
            audit.record(session, actor=actor, action="project:create", project=normalized, details={"owner": owner})
    except IntegrityError:
        raise AdminError(f"project {normalized!r} already exists") from None
    return normalized


def reserve_project(db: Database, name: str, *, actor: str, index_id: int = DEFAULT_INDEX_ID) -> str:
    """Issue 12: keep a name from coming from an upstream mirror without hosting anything: an
    empty project with no owner. A hosted project shadows every base entirely (no dependency
    confusion), and with no role on it nobody can upload to it until an admin gives one."""
    normalized = canonicalize_name(name)
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
        raise AdminError(f"invalid project name {name!r} (see the name normalization spec)")
    try:
        with db.write() as session:
            project = Project(index_id=index_id, name=name, normalized_name=normalized)
            session.add(project)
            project_changed(session, project, listing_changed=True)
            audit.record(session, actor=actor, action="project:reserve", project=normalized)
    except IntegrityError:
        raise AdminError(f"project {normalized!r} already exists") from None
    return normalized


def set_role(
    db: Database, project: str, username: str, role: str, *, actor: str, index_id: int = DEFAULT_INDEX_ID
) -> None:
    if role not in ROLES:
        raise AdminError(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    with db.write() as session:
        proj = _project(session, project, index_id)
        user = _user(session, username)
        existing = session.get(Role, (proj.id, user.id))
        if existing is None:
            session.add(Role(project_id=proj.id, user_id=user.id, role=role))
        else:
            existing.role = role
        audit.record(
            session,
            actor=actor,
            action="role:set",
            project=proj.normalized_name,
            target=username,
            details={"role": role},
        )


def remove_role(db: Database, project: str, username: str, *, actor: str, index_id: int = DEFAULT_INDEX_ID) -> None:
    with db.write() as session:
        proj = _project(session, project, index_id)
        user = _user(session, username)
        existing = session.get(Role, (proj.id, user.id))
        if existing is None:
            raise AdminError(f"{username!r} has no role on {proj.normalized_name!r}")
        session.delete(existing)
        audit.record(session, actor=actor, action="role:remove", project=proj.normalized_name, target=username)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    kind: str
    user: str | None
    projects: list[str] | None
    created: dt.datetime
    expires: dt.datetime | None
    revoked: dt.datetime | None
    description: str


def create_token(
    db: Database,
    *,
    username: str,
    projects: list[str] | None,
    expires_in: dt.timedelta | None,
    description: str,
    prefix: str,
    actor: str,
    index_id: int = DEFAULT_INDEX_ID,
) -> tokens.IssuedToken:
    normalized = sorted({canonicalize_name(p) for p in projects}) if projects else None
    with db.write() as session:
        user = _user(session, username)
        if normalized:
            for name in normalized:
                project = session.execute(
                    sa.select(Project).where(Project.index_id == index_id, Project.normalized_name == name)
                ).scalar_one_or_none()
                # A scoped token may name a project that does not exist yet (its first
                # upload creates it); for an existing one the user must hold a role.
                if project is not None and session.get(Role, (project.id, user.id)) is None:
                    raise AdminError(f"user {username!r} has no role on project {name!r}")
        expires = utcnow() + expires_in if expires_in else None
        issued = tokens.issue(
            session,
            prefix=prefix,
            kind="user",
            index_id=index_id,
            user_id=user.id,
            projects=list(normalized) if normalized else None,
            expires=expires,
            description=description,
        )
        audit.record(
            session,
            actor=actor,
            action="token:create",
            target=issued.id,
            details={"user": username, "projects": normalized, "expires": expires.isoformat() if expires else None},
        )
    return issued


def revoke_token(db: Database, token_or_id: str, *, prefix: str, actor: str) -> str:
    token_id = token_or_id
    if token_or_id.startswith(prefix):
        try:
            token_id, _secret = tokens.split(token_or_id, prefix)
        except tokens.TokenError as exc:
            raise AdminError(str(exc)) from None
    with db.write() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise AdminError(f"no token with id {token_id!r}")
        if row.revoked is None:
            row.revoked = utcnow()
        audit.record(session, actor=actor, action="token:revoke", target=token_id)
    return token_id


def list_tokens(db: Database, username: str | None = None, *, index_id: int = DEFAULT_INDEX_ID) -> list[TokenInfo]:
    with db.read() as session:
        query = (
            sa.select(ApiToken, User.username)
            .outerjoin(User, ApiToken.user_id == User.id)
            .where(ApiToken.index_id == index_id)
        )
        if username:
            query = query.where(User.username == username)
        return [
            TokenInfo(t.id, t.kind, u, t.projects, t.created, t.expires, t.revoked, t.description)
            for t, u in session.execute(query.order_by(ApiToken.created))
        ]


def enable_totp(db: Database, username: str, *, actor: str) -> str:
    """Enrol ``username`` in TOTP (issue 14: the second factor of a stage approval); returns the
    ``otpauth://`` URI, shown this once (the secret is not printed again)."""
    with db.write() as session:
        user = _user(session, username)
        if user.totp_secret is not None:
            raise AdminError(
                f"user {username!r} has TOTP enabled already; `assay admin user totp disable {username}` first"
            )
        user.totp_secret = totp.new_secret()
        user.totp_last_step = None
        audit.record(session, actor=actor, action="user:totp-enable", target=username)
        return totp.provisioning_uri(user.totp_secret, username)


def disable_totp(db: Database, username: str, *, actor: str) -> None:
    with db.write() as session:
        user = _user(session, username)
        if user.totp_secret is None:
            raise AdminError(f"user {username!r} has no TOTP enabled")
        user.totp_secret = None
        user.totp_last_step = None
        audit.record(session, actor=actor, action="user:totp-disable", target=username)
