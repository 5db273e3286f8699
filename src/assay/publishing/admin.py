"""Managing trusted issuers and publishers (``assay admin issuer|publisher``)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from packaging.utils import canonicalize_name
from sqlalchemy.exc import IntegrityError

from assay import audit
from assay.admin import AdminError
from assay.publishers import ConfigError, PublisherKind, get_kind
from assay.publishing.keys import UnsafeURL, check_url, is_url
from assay.publishing.oidc_token import ALLOWED_ALGORITHMS
from assay.publishing.service import lookup_key
from assay.storage.db import Database
from assay.storage.models import (
    DEFAULT_INDEX_ID,
    DEFAULT_MAX_TOKEN_AGE,
    Issuer,
    PendingPublisher,
    Project,
    Publisher,
    PublisherProject,
    User,
    utcnow,
)

_PROJECT_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def _check_issuer_url(url: str) -> str:
    url = url.rstrip("/")
    # OIDC issuers are https URLs without query or fragment (OpenID Connect Discovery 1.0 §2);
    # http is accepted only to a loopback address (test stand-ins): the same parsed-URL rule as
    # for fetching keys (keys.check_url), since the discovery document is fetched from here.
    try:
        parsed = check_url(url, "issuer")
    except UnsafeURL as exc:
        raise AdminError(str(exc)) from None
    if parsed.query or parsed.fragment:
        raise AdminError(f"issuer {url!r} must not have a query or fragment")
    return url


def _check_jwks_source(source: str | None) -> str | None:
    """A ``--jwks`` URL must pass the rule it is fetched under, so a bad one is refused here
    rather than at the first exchange; anything without a scheme is a file path."""
    if not source:
        return None
    if is_url(source):
        try:
            check_url(source, "--jwks")
        except UnsafeURL as exc:
            raise AdminError(str(exc)) from None
    return source


def _check_max_token_age(seconds: int) -> int:
    if seconds <= 0:
        raise AdminError(f"the maximum token age must be positive, got {seconds} s")
    return seconds


def add_issuer(
    db: Database,
    url: str,
    *,
    jwks: str | None,
    algorithms: list[str],
    actor: str,
    max_token_age: int = DEFAULT_MAX_TOKEN_AGE,
) -> str:
    url = _check_issuer_url(url)
    jwks = _check_jwks_source(jwks)
    max_token_age = _check_max_token_age(max_token_age)
    bad = [a for a in algorithms if a not in ALLOWED_ALGORITHMS]
    if bad or not algorithms:
        raise AdminError(
            f"unsupported algorithm(s) {', '.join(bad) or '(none)'}; use: {', '.join(sorted(ALLOWED_ALGORITHMS))}"
        )
    try:
        with db.write() as session:
            session.add(
                Issuer(url=url, jwks_source=jwks or None, algorithms=list(algorithms), max_token_age=max_token_age)
            )
            audit.record(
                session,
                actor=actor,
                action="issuer:add",
                target=url,
                details={"jwks": jwks, "algorithms": algorithms, "max_token_age": max_token_age},
            )
    except IntegrityError:
        raise AdminError(f"issuer {url} is already trusted") from None
    return url


def set_issuer(db: Database, url: str, *, max_token_age: int, actor: str) -> None:
    """Change a trusted issuer's settings in place (it may have publishers, so it cannot be
    removed and added again); running servers apply it at their next exchange."""
    url = url.rstrip("/")
    max_token_age = _check_max_token_age(max_token_age)
    with db.write() as session:
        row = session.execute(sa.select(Issuer).where(Issuer.url == url)).scalar_one_or_none()
        if row is None:
            raise AdminError(f"issuer {url} is not trusted")
        before = row.max_token_age
        row.max_token_age = max_token_age
        audit.record(
            session,
            actor=actor,
            action="issuer:set",
            target=url,
            details={"max_token_age": max_token_age, "was": before},
        )


@dataclass(frozen=True)
class IssuerInfo:
    url: str
    jwks_source: str | None
    algorithms: list[str]
    publishers: int
    max_token_age: int


def list_issuers(db: Database) -> list[IssuerInfo]:
    with db.read() as session:
        counts = dict(
            session.execute(sa.select(Publisher.issuer_url, sa.func.count()).group_by(Publisher.issuer_url)).all()
        )
        return [
            IssuerInfo(i.url, i.jwks_source, list(i.algorithms), counts.get(i.url, 0), i.max_token_age)
            for i in session.execute(sa.select(Issuer).order_by(Issuer.url)).scalars()
        ]


def remove_issuer(db: Database, url: str, *, actor: str) -> None:
    url = url.rstrip("/")
    with db.write() as session:
        row = session.execute(sa.select(Issuer).where(Issuer.url == url)).scalar_one_or_none()
        if row is None:
            raise AdminError(f"issuer {url} is not trusted")
        in_use = session.execute(
            sa.select(sa.func.count()).select_from(Publisher).where(Publisher.issuer_url == url)
        ).scalar()
        if in_use:
            raise AdminError(f"{in_use} publisher(s) use issuer {url}; remove them first")
        session.delete(row)
        audit.record(session, actor=actor, action="issuer:remove", target=url)


@dataclass(frozen=True)
class Added:
    id: str
    pending: bool
    auto_trusted_issuer: bool


def add_publisher(
    db: Database,
    *,
    kind_name: str,
    project: str,
    config: dict[str, Any],
    issuer: str | None,
    owner: str | None,
    pending_days: int,
    actor: str,
    reserve: bool = False,
    index_id: int = DEFAULT_INDEX_ID,
    stage_only: bool = False,
) -> Added:
    try:
        kind = get_kind(kind_name)
    except ConfigError as exc:
        raise AdminError(str(exc)) from None
    issuer_url = issuer or kind.default_issuer
    if not issuer_url:
        raise AdminError(f"a {kind.name} publisher needs --issuer (the CI system's OIDC issuer URL)")
    issuer_url = _check_issuer_url(issuer_url)
    try:
        typed = kind.configure(config, issuer_url)
    except ConfigError as exc:
        raise AdminError(str(exc)) from None
    normalized_config = typed.stored()
    key = lookup_key(kind.name, issuer_url, normalized_config)
    if not _PROJECT_NAME.match(project):
        raise AdminError(f"invalid project name {project!r}")
    normalized = canonicalize_name(project)
    with db.write() as session:
        auto = False
        known = session.execute(sa.select(Issuer.id).where(Issuer.url == issuer_url)).first()
        if known is None:
            if issuer_url != kind.default_issuer:
                raise AdminError(f"issuer {issuer_url} is not trusted; add it first with `assay admin issuer add`")
            # Registering a publisher of a public provider implies trusting that provider's
            # issuer (keys from its OIDC discovery document, RS256 as all of them use).
            session.add(Issuer(url=issuer_url, jwks_source=None, algorithms=["RS256"]))
            audit.record(
                session, actor=actor, action="issuer:add", target=issuer_url, details={"implied_by": kind.name}
            )
            auto = True
        target = session.execute(
            sa.select(Project).where(Project.index_id == index_id, Project.normalized_name == normalized)
        ).scalar_one_or_none()
        if target is None:
            owner_id = None
            if owner:
                owner_id = session.execute(sa.select(User.id).where(User.username == owner)).scalar()
                if owner_id is None:
                    raise AdminError(f"no user named {owner!r}")
            pending = PendingPublisher(
                index_id=index_id,
                kind=kind.name,
                issuer_url=issuer_url,
                config=normalized_config,
                lookup_key=key,
                match_key=kind.match_key(typed),
                project_name=project,
                normalized_name=normalized,
                owner_id=owner_id,
                reserve=reserve,
                stage_only=stage_only,
                expires=utcnow() + dt.timedelta(days=pending_days),
            )
            session.add(pending)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="publisher:add-pending",
                project=normalized,
                target=f"pending-{pending.id}",
                details={
                    "kind": kind.name,
                    "issuer": issuer_url,
                    "config": normalized_config,
                    "owner": owner,
                    "reserve": reserve,
                    "stage_only": stage_only,
                },
            )
            return Added(f"pending-{pending.id}", True, auto)
        if reserve:
            raise AdminError(
                f"project {normalized} exists already: --reserve only applies to a pending publisher "
                "(a name not yet taken)"
            )
        publisher = session.execute(
            sa.select(Publisher).where(Publisher.index_id == index_id, Publisher.lookup_key == key)
        ).scalar_one_or_none()
        if publisher is None:
            publisher = Publisher(
                index_id=index_id,
                kind=kind.name,
                issuer_url=issuer_url,
                config=normalized_config,
                lookup_key=key,
                match_key=kind.match_key(typed),
                # The admin's --owner-id is the pin from the start (else the first exchange's).
                repository_owner_id=kind.owner_id(typed),
            )
            session.add(publisher)
            session.flush()
        if stage_only and not publisher.stage_only:
            # One workload is one row: once stage-only, it is so for every project it publishes
            # (issue 14: a stolen CI token can at most create a stage).
            publisher.stage_only = True
        link = session.get(PublisherProject, (publisher.id, target.id))
        if link is not None:
            raise AdminError(f"this publisher (id {publisher.id}) is already registered for {normalized}")
        session.add(PublisherProject(publisher_id=publisher.id, project_id=target.id))
        audit.record(
            session,
            actor=actor,
            action="publisher:add",
            project=normalized,
            target=str(publisher.id),
            details={
                "kind": kind.name,
                "issuer": issuer_url,
                "config": normalized_config,
                "stage_only": publisher.stage_only,
            },
        )
        return Added(str(publisher.id), False, auto)


@dataclass(frozen=True)
class PublisherInfo:
    id: str
    kind: str
    issuer: str
    description: str
    projects: list[str]
    expires: dt.datetime | None  # pending publishers only
    #: Kinds that pin repository_owner_id: the pinned id, None while not yet recorded.
    owner_id: str | None = None
    pins_owner_id: bool = False
    #: Pending publishers only: whether the project name is reserved for it.
    reserved: bool = False


def _described(kind: PublisherKind[Any], stored: dict[str, Any]) -> tuple[Any, str]:
    """A stored configuration and its description; one today's ``Config`` refuses is flagged
    (it matches no token: ``TrustedPublishing._match``) so the admin registers it again."""
    try:
        config = kind.load(stored)
    except ConfigError as exc:
        return None, f"[INVALID CONFIGURATION, never matches: {exc}]"
    return config, kind.describe(config)


def list_publishers(
    db: Database, project: str | None = None, *, index_id: int = DEFAULT_INDEX_ID
) -> list[PublisherInfo]:
    wanted = canonicalize_name(project) if project else None
    out: list[PublisherInfo] = []
    with db.read() as session:
        links: dict[int, list[str]] = {}
        for pid, name in session.execute(
            sa.select(PublisherProject.publisher_id, Project.normalized_name).join(
                Project, Project.id == PublisherProject.project_id
            )
        ):
            links.setdefault(pid, []).append(name)
        publishers = sa.select(Publisher).where(Publisher.index_id == index_id).order_by(Publisher.id)
        for p in session.execute(publishers).scalars():
            names = sorted(links.get(p.id, []))
            if wanted and wanted not in names:
                continue
            kind = get_kind(p.kind)
            config, description = _described(kind, p.config)
            out.append(
                PublisherInfo(
                    str(p.id),
                    p.kind,
                    p.issuer_url,
                    description,
                    names,
                    None,
                    # A publisher registered with --owner-id before the column existed has it
                    # only in its config until its next exchange records it.
                    owner_id=p.repository_owner_id or (kind.owner_id(config) if config else None),
                    pins_owner_id=kind.pins_owner_id,
                )
            )
        pendings = (
            sa.select(PendingPublisher).where(PendingPublisher.index_id == index_id).order_by(PendingPublisher.id)
        )
        for q in session.execute(pendings).scalars():
            if wanted and q.normalized_name != wanted:
                continue
            kind = get_kind(q.kind)
            config, description = _described(kind, q.config)
            out.append(
                PublisherInfo(
                    f"pending-{q.id}",
                    q.kind,
                    q.issuer_url,
                    description,
                    [q.normalized_name],
                    q.expires,
                    owner_id=kind.owner_id(config) if config else None,
                    pins_owner_id=kind.pins_owner_id,
                    reserved=q.reserve,
                )
            )
    return out


def remove_publisher(
    db: Database, publisher_id: str, *, project: str | None, actor: str, index_id: int = DEFAULT_INDEX_ID
) -> str:
    with db.write() as session:
        if publisher_id.startswith("pending-"):
            row = session.get(PendingPublisher, int(publisher_id.removeprefix("pending-") or 0))
            if row is None or row.index_id != index_id:
                raise AdminError(f"no pending publisher {publisher_id}")
            session.delete(row)
            audit.record(
                session,
                actor=actor,
                action="publisher:remove-pending",
                project=row.normalized_name,
                target=publisher_id,
            )
            return f"removed pending publisher for {row.normalized_name}"
        if not publisher_id.isdigit():
            raise AdminError(f"invalid publisher id {publisher_id!r} (see `assay admin publisher list`)")
        publisher = session.get(Publisher, int(publisher_id))
        if publisher is None or publisher.index_id != index_id:
            raise AdminError(f"no publisher {publisher_id}")
        if project:
            target = session.execute(
                sa.select(Project).where(
                    Project.index_id == index_id, Project.normalized_name == canonicalize_name(project)
                )
            ).scalar_one_or_none()
            link = session.get(PublisherProject, (publisher.id, target.id)) if target else None
            if link is None or target is None:
                raise AdminError(f"publisher {publisher_id} is not registered for {project}")
            session.delete(link)
            audit.record(
                session, actor=actor, action="publisher:remove", project=target.normalized_name, target=publisher_id
            )
            return f"publisher {publisher_id} no longer publishes {target.normalized_name}"
        names = list(
            session.execute(
                sa.select(Project.normalized_name)
                .join(PublisherProject, PublisherProject.project_id == Project.id)
                .where(PublisherProject.publisher_id == publisher.id)
            ).scalars()
        )
        session.execute(sa.delete(PublisherProject).where(PublisherProject.publisher_id == publisher.id))
        session.delete(publisher)
        audited: list[str | None] = list(names) or [None]
        for name in audited:
            audit.record(session, actor=actor, action="publisher:remove", project=name, target=publisher_id)
        return f"removed publisher {publisher_id}"
