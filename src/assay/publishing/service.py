"""The token exchange: a verified OIDC token in, a short-lived upload token out.

Follows Warehouse's pipeline (shared/research/trusted-publishing.md §3.1): pick the issuer
from the allow-list, verify the JWT, try pending publishers first (the first publish creates
the project), then registered publishers, claim the ``jti`` exactly once, mint. Everything after
the JWT check happens in one database transaction, so a refusal at any step leaves nothing
behind: no project, no publisher, no used jti, no token.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assay import audit, untrusted_json
from assay.accounts import tokens
from assay.accounts.tokens import TokenError
from assay.config import Settings
from assay.indexes import IndexRef
from assay.publishers import KINDS, ConfigError, Mismatch, PublisherKind, get_kind
from assay.publishing import oidc_token
from assay.publishing.keys import KeyStore
from assay.publishing.oidc_token import ExchangeRefusal, TokenRejected, TrustedIssuer
from assay.storage.changes import project_changed
from assay.storage.db import Database
from assay.storage.models import (
    Issuer,
    PackageIndex,
    PendingPublisher,
    Project,
    Publisher,
    PublisherProject,
    Role,
    UsedJti,
    utcnow,
)
from assay.untrusted_json import JSONTooDeep

log = logging.getLogger(__name__)

Kind = PublisherKind[Any]

#: PEP 807 features.
SINGLE_USE = "single-use-token"
MULTI_USE = "multi-use-token"
FEATURES = (SINGLE_USE, MULTI_USE)
DEFAULT_FEATURES = (MULTI_USE,)

#: A used jti is remembered until the token could no longer pass verification anyway
#: (exp + leeway), plus a margin, as Warehouse does (exp + 30 + 5).
JTI_MARGIN = 5


class MintError(Exception):
    """A refused exchange. ``code`` is PyPI's error code; ``description`` is shown to the job."""

    def __init__(self, code: ExchangeRefusal, description: str) -> None:
        super().__init__(description)
        self.code: ExchangeRefusal = code
        self.description = description


class _IssuerChanged(Exception):
    """The issuer a token was verified under is no longer configured that way."""


class PendingVoid(MintError):
    """A pending publisher matched, but its project exists already."""

    def __init__(self, pending_id: int, name: str) -> None:
        super().__init__("invalid-pending-publisher", f"valid token, but project {name!r} already exists")
        self.pending_id = pending_id


@dataclass(frozen=True)
class Minted:
    token: str
    expires: dt.datetime
    projects: tuple[str, ...]
    #: The index the token is valid on (the publisher's).
    index: str


class _Body(BaseModel):
    # Strict: a number is not a token. Unknown keys are ignored, as PyPI ignores them.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class TokenRequest(_Body):
    """``POST /_/oidc/mint-token``: PyPI's ``{"token": ...}`` plus PEP 807's ``features``."""

    token: Annotated[str, Field(min_length=1)]
    features: list[str] = Field(default_factory=lambda: list(DEFAULT_FEATURES))

    @field_validator("features")
    @classmethod
    def _known_features(cls, features: list[str]) -> list[str]:
        unknown = sorted(set(features) - set(FEATURES))
        if unknown:
            raise ValueError(f"unsupported feature(s): {', '.join(unknown)}; supported: {', '.join(FEATURES)}")
        if SINGLE_USE in features and MULTI_USE in features:
            raise ValueError("request either single-use-token or multi-use-token, not both")
        return features


class RevokeRequest(_Body):
    """``POST /_/oidc/revoke-token``: the upload token to revoke."""

    token: Annotated[str, Field(min_length=1)]


_B = TypeVar("_B", bound=_Body)


def _parse_body(body: bytes, model: type[_B], what: str, example: str, fields: dict[str, str]) -> _B:
    """``model`` from an untrusted body, or ``MintError("invalid-payload")`` saying what is
    wrong; ``fields`` words the complaint about each field."""
    try:
        # Depth-guarded first (issue 10, item 3): pydantic would walk a deep document too.
        payload = untrusted_json.loads(body)
    except JSONTooDeep as exc:
        raise MintError("invalid-payload", f"the request body is not a {what}: {exc}") from None
    except ValueError:  # not JSON, or not UTF-8/16/32
        raise MintError("invalid-payload", f"the request body must be a JSON object like {example}") from None
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if not error["loc"]:
            description = "the request body must be a JSON object"
        elif error["type"] == "value_error":
            description = str(error["ctx"]["error"])
        else:
            description = fields.get(str(error["loc"][0]), error["msg"])
        raise MintError("invalid-payload", description) from None


def parse_request(body: bytes) -> tuple[str, tuple[str, ...]]:
    """PyPI parses the raw body as JSON whatever its Content-Type (curl sends form encoding,
    older uv sent none). PEP 807 adds an optional ``features`` array."""
    request = _parse_body(
        body,
        TokenRequest,
        "token request",
        '{"token": "<OIDC JWT>"}',
        {
            "token": "the body needs a 'token' string (the OIDC JWT)",
            "features": "'features' must be an array of strings (PEP 807)",
        },
    )
    return request.token, tuple(request.features or DEFAULT_FEATURES)


def parse_revocation(body: bytes) -> str:
    request = _parse_body(
        body,
        RevokeRequest,
        "revocation request",
        '{"token": "<upload token>"}',
        {"token": "the body needs a 'token' string (the upload token to revoke)"},
    )
    return request.token


def lookup_key(kind: str, issuer: str, config: dict[str, Any]) -> str:
    return json.dumps([kind, issuer, config], sort_keys=True, separators=(",", ":"))


#: Statements built once (their cache keys are memoized), with bound parameters: building a
#: select per call costs more CPU than SQLite takes to run it.
_ISSUER_BY_URL = sa.select(Issuer).where(Issuer.url == sa.bindparam("url"))
#: The indexes an exchange may mint for: the one whose endpoint was called (``only``), or at the
#: site root (``only`` NULL) every index whose audience is the server's. Read in the exchange's
#: own statement, so an index created a moment ago by another process counts at once.
_ONLY = sa.bindparam("only", type_=sa.Integer())
_SCOPE = sa.select(PackageIndex.id).where(
    sa.or_(
        PackageIndex.id == _ONLY,
        sa.and_(
            _ONLY.is_(None),
            sa.or_(PackageIndex.audience.is_(None), PackageIndex.audience == sa.bindparam("audience")),
        ),
    )
)
#: Both kinds of candidate in one statement (one round trip): pending publishers, then
#: registered ones each with its projects' names (normalized names hold no commas).
_CANDIDATES = sa.union_all(
    sa.select(
        sa.literal(True).label("pending"),
        PendingPublisher.id,
        PendingPublisher.index_id,
        PendingPublisher.kind,
        PendingPublisher.config,
        sa.null().label("projects"),
        # A pending publisher's only pin is the admin's --owner-id, which is in its config.
        sa.null().label("owner_pin"),
    ).where(
        PendingPublisher.issuer_url == sa.bindparam("issuer"),
        PendingPublisher.match_key.in_(sa.bindparam("keys", expanding=True)),
        PendingPublisher.expires > sa.bindparam("now"),
        PendingPublisher.index_id.in_(_SCOPE),
    ),
    sa.select(
        sa.literal(False).label("pending"),
        Publisher.id,
        Publisher.index_id,
        Publisher.kind,
        Publisher.config,
        sa.select(sa.func.aggregate_strings(Project.normalized_name, ","))
        .join(PublisherProject, PublisherProject.project_id == Project.id)
        .where(PublisherProject.publisher_id == Publisher.id)
        .scalar_subquery()
        .label("projects"),
        Publisher.repository_owner_id.label("owner_pin"),
    ).where(
        Publisher.issuer_url == sa.bindparam("issuer"),
        Publisher.match_key.in_(sa.bindparam("keys", expanding=True)),
        Publisher.index_id.in_(_SCOPE),
    ),
)
_PUBLISHER_PROJECTS = (
    sa.select(Project.normalized_name)
    .join(PublisherProject, PublisherProject.project_id == Project.id)
    .where(PublisherProject.publisher_id == sa.bindparam("publisher_id"))
    .order_by(Project.normalized_name)
)
#: Records the owner id a publisher is pinned to, unless one is recorded already (a concurrent
#: first exchange may have won: then the statement changes nothing and the pin is read back).
_RECORD_OWNER = (
    sa.update(Publisher)
    .where(Publisher.id == sa.bindparam("pid"), Publisher.repository_owner_id.is_(None))
    .values(repository_owner_id=sa.bindparam("pin"))
    .execution_options(synchronize_session=False)
)
_OWNER_PIN = sa.select(Publisher.repository_owner_id).where(Publisher.id == sa.bindparam("pid"))
#: Echoed claim values are cut to this many characters (a refusal is not a claim dump).
_ECHO_CHARS = 200
_DELETE_EXPIRED_JTIS = sa.delete(UsedJti).where(UsedJti.expires < sa.bindparam("now"))
#: Expired jti records are swept at most this often per process (not on every exchange).
JTI_SWEEP_SECONDS = 60.0


@dataclass(frozen=True)
class _Candidate:
    pending: bool
    id: int
    index_id: int
    kind: str
    config: dict[str, Any]
    #: A registered publisher's projects (normalized names); empty for a pending one.
    projects: tuple[str, ...]
    #: The repository owner id a registered publisher is pinned to (None: not yet recorded).
    owner_pin: str | None = None

    def effective_config(self, kind: Kind) -> Any:
        """The configuration the token is checked against: the recorded owner id counts as if
        the admin had given it (PyPI always pins GitHub's repository_owner_id)."""
        return kind.with_owner_id(kind.load(self.config), self.owner_pin)


@dataclass(frozen=True)
class _Scope:
    """Where an exchange looks for its publisher (see ``_SCOPE``)."""

    only: int | None
    audience: str


@dataclass
class _Match:
    row: _Candidate
    kind: Kind
    config: Any


@dataclass(frozen=True)
class _Refusal:
    """Why one candidate refused the token. ``near``: the candidate is the token's own workload's
    publisher (its identifying claim matched), so the reason may be told to the token's holder."""

    near: bool
    reason: str


def _token_claim(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    text = value if isinstance(value, str) else "" if value is None else json.dumps(value)
    return text if len(text) <= _ECHO_CHARS else text[:_ECHO_CHARS] + "..."


def _refusal(issuer: str, claims: dict[str, Any], refusals: Sequence[_Refusal]) -> MintError:
    """The description of a refused exchange. Only the closest publisher's reason is told
    (another project's publisher on the same issuer must not leak its expected values to a
    stranger's token, issue 10 item 4); without one, only the token's own claims are echoed."""
    for refusal in refusals:
        if refusal.near:
            return MintError("invalid-publisher", f"valid token, but no corresponding publisher ({refusal.reason})")
    names = dict.fromkeys(claim for k in KINDS.values() for claim in k.identifying_claims)
    shown = [f"{name} {_token_claim(claims, name)!r}" for name in (*names, "sub") if _token_claim(claims, name)]
    return MintError(
        "invalid-publisher",
        f"valid token, but no trusted publisher matches this token (issuer {issuer!r}"
        + (f"; {', '.join(shown)} from the token" if shown else "")
        + ")",
    )


class TrustedPublishing:
    def __init__(self, db: Database, settings: Settings, keys: KeyStore | None = None) -> None:
        self.db = db
        self.settings = settings
        self.keys = keys or KeyStore(refetch_interval=settings.jwks_refetch_seconds)
        self._last_sweep = 0.0
        #: Issuers as last read, by URL; confirmed in every exchange's transaction.
        self._issuers: dict[str, TrustedIssuer] = {}

    @property
    def audience(self) -> str:
        """The server's audience: the site-root endpoints' and every index's without its own."""
        return self.settings.oidc_audience

    def audience_of(self, index: IndexRef) -> str:
        return index.audience or self.settings.oidc_audience

    # ---- exchange ----
    def mint(self, body: bytes, remote_addr: str | None = None, *, index: IndexRef | None = None) -> Minted:
        """Exchange an OIDC token for an upload token. ``index``: the exchange came to that
        index's own endpoint (``/<index>/_/oidc/mint-token``) and only its publishers count,
        under its audience; None: the site root's endpoint, where the publisher is found in
        every index whose audience is the server's (clients that do not discover, uv and
        twine, still reach each such index), and the token is for that index alone."""
        audience = self.audience if index is None else self.audience_of(index)
        scope = _Scope(index.id if index is not None else None, self.audience)
        raw, features = parse_request(body)
        try:
            issuer_url = oidc_token.unverified_issuer(raw)
        except TokenRejected as exc:
            raise MintError(exc.code, exc.description) from None
        for _attempt in range(2):
            cached = self._issuers.get(issuer_url)
            issuer = cached or self._read_issuer(issuer_url)
            try:
                verified = oidc_token.verify(raw, issuer=issuer, audience=audience, keys=self.keys)
            except TokenRejected as exc:
                if cached is not None and self._read_issuer(issuer_url) != cached:
                    continue  # refused under an outdated configuration: verify under today's
                raise MintError(exc.code, exc.description) from None
            try:
                with self.db.write() as session:
                    self._confirm_issuer(session, issuer)
                    return self._exchange(session, scope, issuer_url, verified.claims, features, remote_addr)
            except _IssuerChanged:
                # An admin changed or removed the issuer since this process read it: read it
                # again and verify the token again under what is configured now.
                self._issuers.pop(issuer_url, None)
            except PendingVoid as exc:
                # Warehouse deletes a pending publisher whose project appeared meanwhile; the
                # exchange's own transaction rolled back, so that happens in a new one.
                self.void_pending(exc.pending_id)
                raise MintError(exc.code, exc.description) from None
            except IntegrityError:
                # Another exchange created the same project or publisher at the same moment.
                raise MintError("invalid-payload", "a concurrent change conflicted with this exchange; retry") from None
        raise MintError("invalid-payload", "the issuer's configuration changed during this exchange; retry")

    def _read_issuer(self, url: str) -> TrustedIssuer:
        with self.db.read() as session:
            issuer = self._issuer_row(session, url)
        self._issuers[url] = issuer
        return issuer

    @staticmethod
    def _issuer_row(session: Session, url: str) -> TrustedIssuer:
        row = session.execute(_ISSUER_BY_URL, {"url": url}).scalar_one_or_none()
        if row is None:
            raise MintError("invalid-payload", f"unknown trusted publishing issuer {url!r}")
        return TrustedIssuer(row.url, row.jwks_source, tuple(row.algorithms), row.max_token_age)

    def _confirm_issuer(self, session: Session, issuer: TrustedIssuer) -> None:
        """The allow-list is the database's, not this process's: removing an issuer or
        narrowing its algorithms must take effect in every worker at once. The issuer a token
        was verified under is read again inside the exchange's own transaction (one statement,
        instead of a transaction of its own before the check), and a difference starts over."""
        try:
            current = self._issuer_row(session, issuer.url)
        except MintError:
            raise _IssuerChanged from None
        if current != issuer:
            raise _IssuerChanged

    def _candidates(self, session: Session, scope: _Scope, issuer: str, claims: dict[str, Any]) -> list[_Candidate]:
        keys = sorted({kind.claims_key(claims) for kind in KINDS.values()} | {""})
        rows = session.execute(
            _CANDIDATES,
            {"issuer": issuer, "keys": keys, "now": utcnow(), "only": scope.only, "audience": scope.audience},
        )
        found = [
            _Candidate(
                bool(r.pending),
                r.id,
                r.index_id,
                r.kind,
                r.config,
                tuple(sorted(r.projects.split(","))) if r.projects else (),
                r.owner_pin,
            )
            for r in rows
        ]
        # Pending publishers first (the first publish creates the project), each kind by id.
        return sorted(found, key=lambda c: (not c.pending, c.id))

    def _match(
        self, rows: Sequence[_Candidate], issuer: str, claims: dict[str, Any], refusals: list[_Refusal]
    ) -> _Match | None:
        matches: list[_Match] = []
        for row in rows:
            kind = get_kind(row.kind)
            try:
                config = row.effective_config(kind)
            except ConfigError as exc:
                # A stored configuration today's Config refuses (an older assay's, or edited by
                # hand) matches no token; the admin finds why in the log and `publisher list`.
                refusals.append(_Refusal(False, f"publisher {row.id}: {exc}"))
                continue
            try:
                kind.check(config, claims, issuer)
            except Mismatch as exc:
                refusals.append(_Refusal(kind.identifies(config, claims, issuer), str(exc)))
                continue
            matches.append(_Match(row, kind, config))
        if not matches:
            return None
        # Warehouse prefers the publisher whose environment equals the token's over an
        # environment-less one.
        matches.sort(key=lambda m: (not m.kind.environment_matches(m.config, claims), m.row.id))
        return matches[0]

    def _exchange(
        self,
        session: Session,
        scope: _Scope,
        issuer: str,
        claims: dict[str, Any],
        features: tuple[str, ...],
        remote_addr: str | None,
    ) -> Minted:
        refusals: list[_Refusal] = []
        created_project: str | None = None
        candidates = self._candidates(session, scope, issuer, claims)
        pending = self._match([c for c in candidates if c.pending], issuer, claims, refusals)
        if pending is not None:
            row = session.get(PendingPublisher, pending.row.id)
            if row is None:  # another exchange turned it into a publisher since the lookup
                raise MintError("invalid-payload", "a concurrent change conflicted with this exchange; retry")
            kind = pending.kind
            publisher, created_project = self._reify(session, row, kind, issuer, claims, remote_addr)
            publisher_id, config, index_id = publisher.id, publisher.config, publisher.index_id
            projects = list(session.execute(_PUBLISHER_PROJECTS, {"publisher_id": publisher.id}).scalars())
        else:
            match = self._match([c for c in candidates if not c.pending], issuer, claims, refusals)
            if match is None:
                if refusals:
                    # Every candidate's reason, for the admin; the job is told only its own.
                    log.info("exchange refused (issuer %s): %s", issuer, "; ".join(r.reason for r in refusals))
                raise _refusal(issuer, claims, refusals)
            kind = match.kind
            publisher_id, config, projects = match.row.id, match.row.config, list(match.row.projects)
            index_id = match.row.index_id
            if kind.pins_owner_id and match.row.owner_pin is None:
                self._pin_owner(session, kind, publisher_id, config, issuer, claims)
        if not projects:
            raise MintError("invalid-publisher", "valid token, but the publisher is not registered for any project")

        self._claim_jti(session, issuer, claims, kind)

        lifetime = dt.timedelta(seconds=self.settings.minted_token_lifetime)
        typed = kind.load(config)
        kept = kind.stored_claims(typed, claims, issuer) | {"publisher_id": publisher_id}
        issued = tokens.issue(
            session,
            prefix=self.settings.token_prefix,
            kind="publisher",
            index_id=index_id,
            publisher_id=publisher_id,
            projects=projects,
            expires=utcnow() + lifetime,
            description=f"Trusted Publishing: {kind.name} {kind.describe(typed)}",
            oidc_claims=kept,
            single_use=SINGLE_USE in features,
        )
        for name in projects:
            audit.record(
                session,
                actor=f"publisher:{publisher_id}",
                action="token:mint",
                project=name,
                target=issued.id,
                token_id=issued.id,
                remote_addr=remote_addr,
                details={
                    "claims": kept,
                    "created_project": name == created_project,
                    "single_use": SINGLE_USE in features,
                },
            )
        assert issued.expires is not None
        index = session.get(PackageIndex, index_id)
        assert index is not None  # the publisher's, in this transaction
        return Minted(issued.token, issued.expires, tuple(projects), index.name)

    def _claim_jti(self, session: Session, issuer: str, claims: dict[str, Any], kind: Kind) -> None:
        jti = claims.get("jti")
        if jti is None:
            if kind.requires_jti:
                raise MintError("invalid-token", "malformed or invalid token: no jti claim")
            return
        if not isinstance(jti, str) or not jti or len(jti) > 300:
            raise MintError("invalid-token", "malformed or invalid token: jti must be a short string")
        # Forget jtis whose tokens can no longer verify anyway, keeping the table small (at most
        # once a minute per process: a statement less on almost every exchange).
        if time.monotonic() - self._last_sweep > JTI_SWEEP_SECONDS:
            self._last_sweep = time.monotonic()
            session.execute(_DELETE_EXPIRED_JTIS, {"now": utcnow()})
        expires = dt.datetime.fromtimestamp(int(claims["exp"]) + oidc_token.LEEWAY + JTI_MARGIN, dt.UTC)
        # The primary key (issuer, jti) makes this atomic across workers and restarts: a second
        # exchange of the same token fails on this flush (on PostgreSQL it waits for the first
        # transaction and fails once that commits).
        session.add(UsedJti(issuer_url=issuer, jti=jti, expires=expires))
        try:
            session.flush()
        except IntegrityError:
            raise MintError("invalid-reuse-token", "invalid token: already used") from None

    def _pin_owner(
        self,
        session: Session,
        kind: Kind,
        publisher_id: int,
        config: dict[str, Any],
        issuer: str,
        claims: dict[str, Any],
    ) -> None:
        """Record the token's repository_owner_id as the publisher's pin (its first successful
        exchange; in the exchange's transaction, so a refusal later on records nothing). If a
        concurrent first exchange recorded one meanwhile, this token must carry that one."""
        owner = claims.get("repository_owner_id")
        if owner in (None, ""):
            return  # a Forgejo token without the claim: nothing to pin yet
        recorded = session.execute(_RECORD_OWNER, {"pid": publisher_id, "pin": str(owner)})
        if recorded.rowcount:  # type: ignore[attr-defined]
            return
        self._check_owner(kind, config, session.execute(_OWNER_PIN, {"pid": publisher_id}).scalar(), issuer, claims)

    @staticmethod
    def _check_owner(kind: Kind, config: dict[str, Any], pin: str | None, issuer: str, claims: dict[str, Any]) -> None:
        if not pin:
            return
        try:
            kind.check(kind.with_owner_id(kind.load(config), pin), claims, issuer)  # the kind words the refusal
        except Mismatch as exc:
            raise MintError("invalid-publisher", f"valid token, but no corresponding publisher ({exc})") from None

    def _reify(
        self,
        session: Session,
        pending: PendingPublisher,
        kind: Kind,
        issuer: str,
        claims: dict[str, Any],
        remote_addr: str | None,
    ) -> tuple[Publisher, str]:
        """Turn a matched pending publisher into a project and a real publisher (Warehouse's
        "reify"). If the project appeared meanwhile, the pending entry is void."""
        existing = session.execute(
            sa.select(Project.id).where(
                Project.index_id == pending.index_id, Project.normalized_name == pending.normalized_name
            )
        ).first()
        if existing is not None:
            raise PendingVoid(pending.id, pending.normalized_name)
        project = Project(index_id=pending.index_id, name=pending.project_name, normalized_name=pending.normalized_name)
        session.add(project)
        session.flush()
        if pending.owner_id is not None:
            session.add(Role(project_id=project.id, user_id=pending.owner_id, role="owner"))
        project_changed(session, project, listing_changed=True)
        publisher = session.execute(
            sa.select(Publisher).where(
                Publisher.index_id == pending.index_id, Publisher.lookup_key == pending.lookup_key
            )
        ).scalar_one_or_none()
        if publisher is None:
            owner = claims.get("repository_owner_id")
            publisher = Publisher(
                index_id=pending.index_id,
                kind=pending.kind,
                issuer_url=pending.issuer_url,
                config=pending.config,
                lookup_key=pending.lookup_key,
                match_key=pending.match_key,
                # Pinned from birth: the admin's --owner-id (which this token matched), else the
                # id of the owner that publishes first.
                repository_owner_id=(
                    kind.owner_id(kind.load(pending.config)) or (str(owner) if owner not in (None, "") else None)
                    if kind.pins_owner_id
                    else None
                ),
            )
            session.add(publisher)
            session.flush()
        elif kind.pins_owner_id:
            # The same workload is already registered for other projects: its pin holds here too.
            if publisher.repository_owner_id:
                self._check_owner(kind, publisher.config, publisher.repository_owner_id, issuer, claims)
            else:
                self._pin_owner(session, kind, publisher.id, publisher.config, issuer, claims)
        if pending.stage_only:
            publisher.stage_only = True  # issue 14: registered stage-only, stays so
        session.add(PublisherProject(publisher_id=publisher.id, project_id=project.id))
        session.delete(pending)
        audit.record(
            session,
            actor=f"publisher:{publisher.id}",
            action="project:create",
            project=project.normalized_name,
            remote_addr=remote_addr,
            details={"from_pending_publisher": pending.id},
        )
        return publisher, project.normalized_name

    # ---- revocation ----
    def revoke(self, body: bytes, remote_addr: str | None = None) -> None:
        """Revoke an upload token its holder no longer needs (crates.io-style; uv calls this
        as ``burn-token`` after publishing). Possession of the token is the authority."""
        token = parse_revocation(body)
        with self.db.write() as session:
            try:
                token_id, _secret = tokens.split(token, self.settings.token_prefix)
                row = tokens.verify(session, token, self.settings.token_prefix)
            except TokenError as exc:
                if exc.code in ("revoked-token", "expired-token"):
                    return  # already unusable: revoking again is a success
                raise MintError("invalid-token", str(exc)) from None
            row.revoked = utcnow()
            audit.record(
                session,
                actor=f"token:{token_id}",
                action="token:revoke",
                target=token_id,
                token_id=token_id,
                remote_addr=remote_addr,
            )

    def void_pending(self, pending_id: int) -> None:
        with self.db.write() as session:
            row = session.get(PendingPublisher, pending_id)
            if row is not None:
                audit.record(
                    session,
                    actor="system",
                    action="publisher:pending-void",
                    project=row.normalized_name,
                    details={"pending_id": pending_id},
                )
                session.delete(row)
