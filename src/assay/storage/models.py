"""The metadata database: every table assay keeps, as SQLAlchemy 2 typed models.

Blobs (distribution files and their extracted metadata) live in the blob store; a ``File`` row
points at them by key. A row is only ever committed after its blobs are in place, so a row
never points at a missing blob (see ``assay.upload.commit``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

#: Default longest OIDC token lifetime (exp - iat) accepted from a trusted issuer, in seconds:
#: two hours (CI providers issue tokens of minutes: GitHub 5 min, GitLab the job's timeout).
DEFAULT_MAX_TOKEN_AGE = 2 * 60 * 60


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: Nullable JSON columns: Python None is stored as SQL NULL (not the JSON value null), so
#: "IS NULL" means "absent".
NullableJSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON}


#: The default index: the one at the site root (``/simple/``, ``/legacy/``, ...). The migration
#: that introduced indexes (0006) created it with this id, and it can never be deleted.
DEFAULT_INDEX_ID = 1
DEFAULT_INDEX_NAME = "default"


def _index_column() -> Mapped[int]:
    # Every row made before indexes existed belongs to the default index (server default 1).
    return mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), index=True, default=DEFAULT_INDEX_ID, server_default="1"
    )


class PackageIndex(Base):
    """An index: its own projects, files, tokens and publishers, under its own URLs (PEP 807's
    several registries on one host). Only users are shared between indexes."""

    __tablename__ = "indexes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: URL path segment (``/team/simple/``); "default" names the root index.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: None: follow the server's ``--private`` setting; True/False: this index's own choice.
    private: Mapped[bool | None] = mapped_column(Boolean, default=None)
    #: Trusted Publishing audience of this index's OIDC tokens; None: the server's audience.
    audience: Mapped[str | None] = mapped_column(String(200), default=None)
    #: Issue 12: a mirror index serves this upstream simple index (PEP 691/503) through its
    #: policy, and takes no uploads. None: a hosted index.
    mirror_url: Mapped[str | None] = mapped_column(String(1000), default=None)
    #: Issue 12: mirror indexes (names, in order) a hosted index is layered over; a project it
    #: hosts (or reserves) shadows them entirely.
    bases: Mapped[list[str] | None] = mapped_column(NullableJSON, default=None)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: RFC 6238 TOTP secret (base32), the second factor a stage approval needs (issue 14); None:
    #: not enrolled (``assay admin user totp enable``).
    totp_secret: Mapped[str | None] = mapped_column(String(64), default=None)
    #: The last TOTP time step accepted: a code is good once (RFC 6238 section 5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Project(Base):
    __tablename__ = "projects"

    __table_args__ = (UniqueConstraint("index_id", "normalized_name", name="uq_projects_index_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = _index_column()
    #: The name as first uploaded (display name).
    name: Mapped[str] = mapped_column(String(200))
    #: PEP 503 normalized name: the identity of the project within its index.
    normalized_name: Mapped[str] = mapped_column(String(200))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: PEP 792 status: active, archived, quarantined or deprecated.
    status: Mapped[str] = mapped_column(String(20), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    #: Bumped on every change that alters the project's pages; keys the page cache.
    serial: Mapped[int] = mapped_column(BigInteger, default=1)
    #: Issue 14: "direct" (an upload goes live at once) or "staged" (it lands in a stage that an
    #: owner approves with a second factor; ``assay.stages``).
    releases_mode: Mapped[str] = mapped_column(String(10), default="direct", server_default="direct")
    #: Four eyes: the approver of a stage must not be who triggered its uploads.
    four_eyes: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: M of N: how many different owners must approve a stage before it goes live.
    approvals_required: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: Issue 14, item 4: how many distinct registered rebuilders must have reproduced every
    #: wheel of a stage before it may be approved (0: none).
    rebuilds_required: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    releases: Mapped[list[Release]] = relationship(
        back_populates="project", cascade="all, delete-orphan", passive_deletes=True
    )


class Role(Base):
    """A user's role on a project: ``owner`` (may manage roles) or ``maintainer`` (may upload)."""

    __tablename__ = "roles"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("project_id", "canonical_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    #: The version as written in the first uploaded file's metadata.
    version: Mapped[str] = mapped_column(String(100))
    #: packaging.utils.canonicalize_version: "1.0" and "1.0.0" are one release.
    canonical_version: Mapped[str] = mapped_column(String(100))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: PEP 592: a yanked release stays downloadable but resolvers skip it.
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str | None] = mapped_column(Text, default=None)
    requires_python: Mapped[str | None] = mapped_column(Text, default=None)
    #: Core metadata of the first file uploaded for this release, as a JSON-able dict
    #: (what the JSON API's "info" shows).
    core_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    project: Mapped[Project] = relationship(back_populates="releases")
    files: Mapped[list[File]] = relationship(
        back_populates="release", cascade="all, delete-orphan", passive_deletes=True
    )


class File(Base):
    __tablename__ = "files"
    __table_args__ = (
        # PyPI: "Only one sdist may be uploaded per release" (a .tar.gz and a .zip would give
        # installers two sources). A partial unique index makes the rule hold under races.
        Index(
            "uq_files_one_sdist_per_release",
            "release_id",
            unique=True,
            sqlite_where=text("packagetype = 'sdist'"),
            postgresql_where=text("packagetype = 'sdist'"),
        ),
        #: Filenames are unique within an index, as on PyPI (a filename can never be reused).
        UniqueConstraint("index_id", "filename", name="uq_files_index_filename"),
        #: PyPI refuses the same bytes under a second filename (a renamed wheel, say).
        UniqueConstraint("index_id", "sha256", name="uq_files_index_sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The project's index, repeated here so the filename and digest rules are constraints.
    index_id: Mapped[int] = _index_column()
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(300))
    packagetype: Mapped[str] = mapped_column(String(20))  # "sdist" or "bdist_wheel"
    python_version: Mapped[str] = mapped_column(String(100))  # "source" or the wheel's python tag
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blake2_256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))
    upload_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    requires_python: Mapped[str | None] = mapped_column(Text, default=None)
    blob_key: Mapped[str] = mapped_column(String(400), unique=True)
    #: PEP 658 / 714: the core metadata file, extracted at upload.
    metadata_blob_key: Mapped[str | None] = mapped_column(String(420), default=None)
    metadata_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    uploaded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    uploaded_by_token_id: Mapped[str | None] = mapped_column(String(64), default=None)
    #: Trusted Publishing: the OIDC claims of the token that uploaded this file.
    publisher_claims: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, default=None)
    #: PEP 740 provenance object (verified at upload), or None.
    provenance: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, default=None)

    release: Mapped[Release] = relationship(back_populates="files")


class ApiToken(Base):
    """An upload credential. The secret is stored only as its SHA-256."""

    __tablename__ = "api_tokens"

    #: Public identifier, embedded in the token string.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The one index this token is valid on.
    index_id: Mapped[int] = _index_column()
    secret_sha256: Mapped[str] = mapped_column(String(64))
    #: "user" (admin-issued) or "publisher" (minted by Trusted Publishing).
    kind: Mapped[str] = mapped_column(String(20), default="user")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None, index=True)
    publisher_id: Mapped[int | None] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    #: Normalized project names this token may upload to; None = every project of its user.
    projects: Mapped[list[str] | None] = mapped_column(NullableJSON, default=None)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_used: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: Trusted Publishing: claims of the OIDC token this credential was minted from.
    oidc_claims: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, default=None)
    #: PEP 807 "single-use-token": valid for exactly one upload.
    single_use: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEvent(Base):
    """Every write: who, what, when, with which token, from where."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_project_time", "project", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    #: "user:<name>", "publisher:<id>", "admin:<os user>" ...
    actor: Mapped[str] = mapped_column(String(200))
    token_id: Mapped[str | None] = mapped_column(String(64), default=None)
    action: Mapped[str] = mapped_column(String(60))
    project: Mapped[str | None] = mapped_column(String(200), default=None)
    target: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(100), default=None)


class Issuer(Base):
    """An OIDC issuer the admin trusts for Trusted Publishing."""

    __tablename__ = "issuers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(500), unique=True)
    #: Where keys come from: None = the issuer's OIDC discovery document; else a JWKS file path or URL.
    jwks_source: Mapped[str | None] = mapped_column(Text, default=None)
    #: Signature algorithms accepted from this issuer (pinned, e.g. ["RS256"]).
    algorithms: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["RS256"])
    #: Longest token lifetime (exp - iat, seconds) accepted from this issuer; issuers added
    #: before the column existed get the default too (server default).
    max_token_age: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_MAX_TOKEN_AGE, server_default=str(DEFAULT_MAX_TOKEN_AGE)
    )
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Publisher(Base):
    """A Trusted Publisher: an issuer plus the claims that identify one CI workload."""

    __tablename__ = "publishers"
    #: One workload is one row per index.
    __table_args__ = (UniqueConstraint("index_id", "lookup_key", name="uq_publishers_index_lookup_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = _index_column()
    kind: Mapped[str] = mapped_column(String(30))
    issuer_url: Mapped[str] = mapped_column(String(500), index=True)
    #: Kind-specific fields (repository, workflow, environment, ...).
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: A stable string of kind + issuer + config, so one workload is one row (per index).
    lookup_key: Mapped[str] = mapped_column(String(1000))
    #: The kind's indexed selector (e.g. the lower-cased repository) a token's claims must
    #: reproduce for this publisher to be a candidate; "" for kinds without one.
    match_key: Mapped[str] = mapped_column(String(500), index=True, default="")
    #: GitHub-family kinds: the repository owner's numeric id this publisher is pinned to. The
    #: admin's --owner-id, else recorded at the first successful exchange; required from then on
    #: (PyPI pins it: an owner account deleted and re-created under the same name gets a new id,
    #: "account resurrection"). None: not yet recorded.
    repository_owner_id: Mapped[str | None] = mapped_column(String(64), default=None)
    #: Issue 14: its uploads always land in a stage, whatever the project's setting (a stolen CI
    #: token can at most create a stage).
    stage_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PublisherProject(Base):
    __tablename__ = "publisher_projects"

    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)


class PendingPublisher(Base):
    """A publisher registered for a project that does not exist yet; the first publish creates it."""

    __tablename__ = "pending_publishers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = _index_column()
    kind: Mapped[str] = mapped_column(String(30))
    issuer_url: Mapped[str] = mapped_column(String(500), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    lookup_key: Mapped[str] = mapped_column(String(1000))
    match_key: Mapped[str] = mapped_column(String(500), index=True, default="")
    project_name: Mapped[str] = mapped_column(String(200))
    normalized_name: Mapped[str] = mapped_column(String(200), index=True)
    #: The user who becomes owner of the project it creates (may be None: admin-registered).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None)
    #: ``--reserve``: while this pending publisher is valid, no upload with a user's credential
    #: may create the project (only its own first trusted publish, or its designated owner).
    reserve: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Issue 14: the publisher it becomes is stage-only.
    stage_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires: Mapped[dt.datetime] = mapped_column()


class Stage(Base):
    """Issue 14: a release's files waiting for approval (npm's staged publishing; PEP 694's
    publishing sessions). ``id`` is the unguessable part of the preview URL
    (``/stage/<id>/simple/``). Approval moves its files into ``files`` and deletes it; a
    rejection or expiry deletes it with its blobs. Only the audit log remembers it."""

    __tablename__ = "stages"
    #: One open stage per release.
    __table_args__ = (UniqueConstraint("project_id", "canonical_version", name="uq_stages_project_version"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    index_id: Mapped[int] = _index_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(100))
    canonical_version: Mapped[str] = mapped_column(String(100))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires: Mapped[dt.datetime] = mapped_column(index=True)


class ApprovalStatement(Base):
    """Issue 14: the signed statement of an approval (a C2SP signed note by the index's log
    key: which files, with which digests, went live by whose approval); kept with the release,
    served at ``/_/releases/<project>/<version>/approvals``."""

    __tablename__ = "approval_statements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = _index_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    canonical_version: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MaintainerIdentity(Base):
    """Issue 14, item 3: a Sigstore identity (OIDC issuer plus e-mail or subject) whose PEP 740
    attestations a project accepts on a token upload: a release signed by a maintainer from
    their own machine (``assay admin maintainer add``). Checked under the index's trust root."""

    __tablename__ = "maintainer_identities"
    __table_args__ = (
        UniqueConstraint("project_id", "issuer", "identity_kind", "value", name="uq_maintainer_identities_identity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = _index_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    #: The OIDC issuer Fulcio writes into the certificate (extension 1.3.6.1.4.1.57264.1.8).
    issuer: Mapped[str] = mapped_column(String(500))
    #: "email" (an RFC 822 SAN) or "subject" (a URI SAN, e.g. a workload's).
    identity_kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(500))
    added: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StageApproval(Base):
    """One owner's approval of a stage, while it waits for the project's ``approvals_required``
    (M of N); deleted with the stage."""

    __tablename__ = "stage_approvals"

    stage_id: Mapped[str] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StagedFile(Base):
    """A file of a stage: the columns its ``files`` row will have, plus what approval needs
    (the release's metadata, the publisher for the log entry, who triggered the upload). Its
    filename is in ``used_filenames`` from the start: reserved, and never reused."""

    __tablename__ = "staged_files"
    __table_args__ = (
        UniqueConstraint("index_id", "filename", name="uq_staged_files_index_filename"),
        UniqueConstraint("index_id", "sha256", name="uq_staged_files_index_sha256"),
        # PyPI's one sdist per release holds within a stage too.
        Index(
            "uq_staged_files_one_sdist",
            "stage_id",
            unique=True,
            sqlite_where=text("packagetype = 'sdist'"),
            postgresql_where=text("packagetype = 'sdist'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage_id: Mapped[str] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"), index=True)
    index_id: Mapped[int] = _index_column()
    filename: Mapped[str] = mapped_column(String(300))
    packagetype: Mapped[str] = mapped_column(String(20))
    python_version: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blake2_256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))
    upload_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    requires_python: Mapped[str | None] = mapped_column(Text, default=None)
    #: The file's final blob key (approval moves no bytes, so it is atomic in the database).
    blob_key: Mapped[str] = mapped_column(String(400), unique=True)
    metadata_blob_key: Mapped[str | None] = mapped_column(String(420), default=None)
    metadata_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    #: The release's core metadata, should approval create the release.
    core_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    uploaded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    uploaded_by_token_id: Mapped[str | None] = mapped_column(String(64), default=None)
    publisher_id: Mapped[int | None] = mapped_column(default=None)
    publisher_claims: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, default=None)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, default=None)
    #: Who triggered the upload, for four eyes: "user:<name>", or the CI's person
    #: ("github:<actor>", "gitlab:<user_login>"), else "publisher:<id>".
    triggered_by: Mapped[str] = mapped_column(String(200))


class UsedJti(Base):
    """OIDC token ids already exchanged. The primary key makes "accept once" atomic across workers."""

    __tablename__ = "used_jtis"

    issuer_url: Mapped[str] = mapped_column(String(500), primary_key=True)
    jti: Mapped[str] = mapped_column(String(300), primary_key=True)
    expires: Mapped[dt.datetime] = mapped_column(index=True)


class Counter(Base):
    """Named change counters shared by all workers (``projects:<index id>``: bumped when that
    index's list of projects changes; see ``assay.storage.counters``)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class UsedFilename(Base):
    """Every filename ever accepted. PyPI never lets a filename be reused, even after the file
    is removed, so an installer never sees two different files under one name."""

    __tablename__ = "used_filenames"

    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True, server_default="1"
    )
    filename: Mapped[str] = mapped_column(String(300), primary_key=True)


class PendingBlob(Base):
    """The publish journal: a blob an upload is about to rename into place, recorded (and
    committed) before the rename and deleted in the transaction that adds the file's row. After
    a crash, an entry whose process is gone names exactly the blob that may be left without a
    row; recovery at start-up removes it (see ``assay.storage.recovery``)."""

    __tablename__ = "pending_blobs"

    #: Unique: two uploads of the very same file in flight at once take turns.
    key: Mapped[str] = mapped_column(String(420), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


# ---- the transparency log (issue 13; see assay.log.store and docs/log-format.md) ----


class LogState(Base):
    """A log's size: one row per index (``id`` = the index's id). Appending bumps ``size`` with
    an UPDATE in the writer's own transaction, so the sequence is gap-free and appends are serialised on the row lock
    (PostgreSQL) or the write lock (SQLite): a rolled-back writer gives its number back."""

    __tablename__ = "log_state"

    #: The index whose log this is (one log per index, one row each; see ``assay.log.store``).
    id: Mapped[int] = mapped_column(ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)


class LogEntry(Base):
    """One log entry: ``seq`` is its leaf index, ``data`` its canonical bytes (what is hashed)."""

    __tablename__ = "log_entries"
    __table_args__ = (Index("ix_log_entries_index_filename", "index_id", "filename"),)

    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True, server_default="1"
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: upload, yank, unyank, status, remove, provenance-import, approval (also inside ``data``).
    kind: Mapped[str] = mapped_column(String(30))
    #: The file an entry is about, if any: lets fsck match files to their upload entries.
    filename: Mapped[str | None] = mapped_column(String(300), default=None)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LogHash(Base):
    """The log's stored hashes (RFC 6962 subtree hashes, Go tlog's StoredHashIndex layout)."""

    __tablename__ = "log_hashes"

    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True, server_default="1"
    )
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LogCheckpoint(Base):
    """Signed checkpoints, newest (largest size) served. Every worker serves the same note; a
    new one is signed at most every ``log_checkpoint_interval`` seconds (assay.log.publish)."""

    __tablename__ = "log_checkpoints"

    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True, server_default="1"
    )
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    note: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A signed-in browser (issue 15, item 4): an API token exchanged for a session cookie. The
    cookie's secret is stored only as its SHA-256, as tokens are; the session ends with its
    token (revoked, expired, deleted) or at ``expires``, whichever comes first."""

    __tablename__ = "web_sessions"

    secret_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True)
    #: The index the session belongs to (1: the default index; several per server: issue 11).
    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), default=DEFAULT_INDEX_ID, server_default="1"
    )
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires: Mapped[dt.datetime] = mapped_column(index=True)

# ---- upstream mirrors (issue 12; see assay.mirror and docs/mirrors.md) ----
# ``index_id`` is the index a row belongs to (its rows go with it: ON DELETE CASCADE).


class MirrorPolicy(Base):
    """An index's mirror policy (``assay admin policy set``): the TOML as given, and the pins
    file it names, read at the same time, so every worker decides from the same text."""

    __tablename__ = "mirror_policies"

    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    text: Mapped[str] = mapped_column(Text)
    pins_text: Mapped[str | None] = mapped_column(Text, default=None)
    #: Where the policy was read from (informational: ``policy show``).
    source: Mapped[str] = mapped_column(String(1000))
    updated: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MirrorPage(Base):
    """An upstream project page as last fetched, parsed (``assay.mirror.upstream.UpstreamPage``
    as JSON), with the validators to revalidate it (RFC 9110 ETag / Last-Modified)."""

    __tablename__ = "mirror_pages"
    __table_args__ = (UniqueConstraint("index_id", "upstream", "project"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), default=DEFAULT_INDEX_ID, server_default=text("1")
    )
    #: The upstream simple index's URL (ends with "/").
    upstream: Mapped[str] = mapped_column(String(1000))
    project: Mapped[str] = mapped_column(String(200))
    #: The parsed page; None when upstream answered 404 (no such project there).
    page: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, default=None)
    etag: Mapped[str | None] = mapped_column(String(300), default=None)
    last_modified: Mapped[str | None] = mapped_column(String(100), default=None)
    #: When upstream last confirmed the page (200 or 304): the TTL counts from here.
    fetched: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MirrorFile(Base):
    """A file fetched from upstream, checked against the upstream page's sha256 and stored in
    the blob store. Committed after its blobs are published (like ``File``)."""

    __tablename__ = "mirror_files"
    __table_args__ = (UniqueConstraint("index_id", "filename"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), default=DEFAULT_INDEX_ID, server_default=text("1")
    )
    project: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(500), unique=True)
    #: PEP 658 / 714: the upstream's core metadata file, when it advertised one.
    metadata_blob_key: Mapped[str | None] = mapped_column(String(500), default=None)
    metadata_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    upstream_url: Mapped[str] = mapped_column(String(2000))
    fetched: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MirrorMetadata(Base):
    """A mirrored file's core metadata fetched on its own (PEP 658 / 714: a resolver reads it
    before choosing a file), checked against the hash upstream's page lists. The file itself
    may never be downloaded."""

    __tablename__ = "mirror_metadata"
    __table_args__ = (UniqueConstraint("index_id", "filename", "file_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), default=DEFAULT_INDEX_ID, server_default=text("1")
    )
    #: The distribution's filename (the metadata file is served at its URL + ".metadata").
    filename: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(500), unique=True)
    fetched: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MirrorProvenance(Base):
    """The PEP 740 provenance object upstream serves for a file, kept as fetched (bytes and
    digest), so it is re-served unchanged and verified once per (file, provenance, pin)."""

    __tablename__ = "mirror_provenance"
    __table_args__ = (UniqueConstraint("index_id", "filename", "file_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), default=DEFAULT_INDEX_ID, server_default=text("1")
    )
    filename: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    #: The body; None when upstream advertised a URL that answered 404 (no provenance).
    body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    digest: Mapped[str | None] = mapped_column(String(64), default=None)
    fetched: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MirrorVerification(Base):
    """A provenance check's result, keyed by what it depends on: the file's sha256, the
    provenance's digest, the pin and the trust root (``assay.mirror.attested``)."""

    __tablename__ = "mirror_verifications"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64))
    #: Every attestation verified (cryptography, subject, digest).
    sound: Mapped[bool] = mapped_column(Boolean)
    #: Sound and by the pinned identity; None when no pin was given.
    pinned: Mapped[bool | None] = mapped_column(Boolean, default=None)
    #: The publisher blocks of the bundles whose attestations verified (TOFU proposes from them).
    publishers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    detail: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MirrorPin(Base):
    """A publisher pin recorded trust-on-first-use (``tofu = true``): the first verified
    publisher of a project with no pin. Never changed once recorded."""

    __tablename__ = "mirror_pins"

    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: The pin table, in ``.provenance.toml`` form (``kind`` and that kind's fields).
    pin: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The file whose verified provenance the pin was taken from.
    filename: Mapped[str] = mapped_column(String(300))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MirrorDecision(Base):
    """A policy decision about one upstream file: one row per (file, outcome), so the first
    decision of each kind is kept, with when it was made (``policy report``)."""

    __tablename__ = "mirror_decisions"
    __table_args__ = (UniqueConstraint("index_id", "filename", "sha256", "outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), default=DEFAULT_INDEX_ID, server_default=text("1")
    )
    project: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    #: "visible", or the reason code a file is hidden (assay.mirror.decide.REASONS).
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    decided: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MirrorConflict(Base):
    """Upstream offered a file's name with a sha256 other than the one kept: the new bytes are
    refused, the old ones served (``policy report`` lists these)."""

    __tablename__ = "mirror_conflicts"
    __table_args__ = (UniqueConstraint("index_id", "filename", "offered_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), default=DEFAULT_INDEX_ID, server_default=text("1")
    )
    project: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(300))
    kept_sha256: Mapped[str] = mapped_column(String(64))
    offered_sha256: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)

class LogWitness(Base):
    """A witness whose cosignatures the index accepts (``assay admin log witness add``): a
    C2SP tlog-cosignature verifier key (``<name>+<key ID>+<base64(0x04 || key)>``) under a
    label the admin chose; witnesses are per index (each index has its own log)."""

    __tablename__ = "log_witnesses"
    __table_args__ = (UniqueConstraint("index_id", "label"), UniqueConstraint("index_id", "vkey"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), default=DEFAULT_INDEX_ID, server_default="1"
    )
    label: Mapped[str] = mapped_column(String(100))
    vkey: Mapped[str] = mapped_column(String(300))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LogCosignature(Base):
    """A witness's cosignature on the checkpoint of ``size`` (C2SP tlog-cosignature), verified
    when submitted; ``/log/checkpoint`` serves it as an extra signature line. ``text_sha256``
    is SHA-256 of the checkpoint text it signs: a checkpoint re-signed for another origin at
    the same size does not carry it. One per witness key and size (the newest submitted)."""

    __tablename__ = "log_cosignatures"
    __table_args__ = (UniqueConstraint("index_id", "size", "witness_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), default=DEFAULT_INDEX_ID, server_default="1"
    )
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    witness_id: Mapped[int] = mapped_column(ForeignKey("log_witnesses.id", ondelete="CASCADE"))
    text_sha256: Mapped[str] = mapped_column(String(64))
    #: The whole signature line, ``— <name> <base64(key ID || timestamp || signature)>\n``.
    line: Mapped[str] = mapped_column(String(500))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Rebuilder(Base):
    """Issue 14, item 4: a Sigstore identity a project trusts to rebuild its sdists (a CI of
    another organisation, a second maintainer): the OIDC issuer and the certificate's e-mail
    or subject (SAN), under the index's trust root."""

    __tablename__ = "rebuilders"
    __table_args__ = (UniqueConstraint("project_id", "issuer", "identity", name="uq_rebuilders_identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = _index_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    #: The certificate's SubjectAlternativeName: an e-mail address or a URI.
    identity: Mapped[str] = mapped_column(String(500))
    #: "email" or "subject" (how it was registered, for listings).
    identity_kind: Mapped[str] = mapped_column(String(10))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RebuildAttestation(Base):
    """Issue 14, item 4: a registered rebuilder's signed report that it rebuilt ``filename``
    (a wheel, live or staged) from the release's sdist, and whether the bytes matched. Keyed
    by the index's filename and digest, not by a file row: a staged file's reports stay with
    it when it goes live (filenames are never reused on an index)."""

    __tablename__ = "rebuild_attestations"
    __table_args__ = (
        UniqueConstraint("index_id", "filename", "sha256", "rebuilder_id", name="uq_rebuild_attestations_one"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = _index_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    canonical_version: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(300), index=True)
    #: The index's file's sha256 (the statement's subject).
    sha256: Mapped[str] = mapped_column(String(64))
    #: The rebuilt wheel's sha256: equal to ``sha256`` for a match.
    rebuilt_sha256: Mapped[str] = mapped_column(String(64))
    #: "match" or "mismatch".
    outcome: Mapped[str] = mapped_column(String(10))
    rebuilder_id: Mapped[int] = mapped_column(ForeignKey("rebuilders.id", ondelete="CASCADE"), index=True)
    #: The PEP 740 attestation object as submitted (DSSE envelope + verification material).
    attestation: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
