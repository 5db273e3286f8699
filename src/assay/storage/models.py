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


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The name as first uploaded (display name).
    name: Mapped[str] = mapped_column(String(200))
    #: PEP 503 normalized name: the identity of the project.
    normalized_name: Mapped[str] = mapped_column(String(200), unique=True)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: PEP 792 status: active, archived, quarantined or deprecated.
    status: Mapped[str] = mapped_column(String(20), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    #: Bumped on every change that alters the project's pages; keys the page cache.
    serial: Mapped[int] = mapped_column(BigInteger, default=1)

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
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    #: Filenames are unique across the whole index, as on PyPI (a filename can never be reused).
    filename: Mapped[str] = mapped_column(String(300), unique=True)
    packagetype: Mapped[str] = mapped_column(String(20))  # "sdist" or "bdist_wheel"
    python_version: Mapped[str] = mapped_column(String(100))  # "source" or the wheel's python tag
    size: Mapped[int] = mapped_column(BigInteger)
    #: Unique: PyPI refuses the same bytes under a second filename (a renamed wheel, say).
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
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

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    issuer_url: Mapped[str] = mapped_column(String(500), index=True)
    #: Kind-specific fields (repository, workflow, environment, ...).
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: A stable string of kind + issuer + config, so one workload is one row.
    lookup_key: Mapped[str] = mapped_column(String(1000), unique=True)
    #: The kind's indexed selector (e.g. the lower-cased repository) a token's claims must
    #: reproduce for this publisher to be a candidate; "" for kinds without one.
    match_key: Mapped[str] = mapped_column(String(500), index=True, default="")
    #: GitHub-family kinds: the repository owner's numeric id this publisher is pinned to. The
    #: admin's --owner-id, else recorded at the first successful exchange; required from then on
    #: (PyPI pins it: an owner account deleted and re-created under the same name gets a new id,
    #: "account resurrection"). None: not yet recorded.
    repository_owner_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PublisherProject(Base):
    __tablename__ = "publisher_projects"

    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)


class PendingPublisher(Base):
    """A publisher registered for a project that does not exist yet; the first publish creates it."""

    __tablename__ = "pending_publishers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
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
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires: Mapped[dt.datetime] = mapped_column()


class UsedJti(Base):
    """OIDC token ids already exchanged. The primary key makes "accept once" atomic across workers."""

    __tablename__ = "used_jtis"

    issuer_url: Mapped[str] = mapped_column(String(500), primary_key=True)
    jti: Mapped[str] = mapped_column(String(300), primary_key=True)
    expires: Mapped[dt.datetime] = mapped_column(index=True)


class Counter(Base):
    """Named change counters shared by all workers (``projects``: bumped when the list changes)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class UsedFilename(Base):
    """Every filename ever accepted. PyPI never lets a filename be reused, even after the file
    is removed, so an installer never sees two different files under one name."""

    __tablename__ = "used_filenames"

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
    """The log's size: one row (``id`` 1). Appending bumps ``size`` with an UPDATE in the writer's
    own transaction, so the sequence is gap-free and appends are serialised on the row lock
    (PostgreSQL) or the write lock (SQLite): a rolled-back writer gives its number back."""

    __tablename__ = "log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)


class LogEntry(Base):
    """One log entry: ``seq`` is its leaf index, ``data`` its canonical bytes (what is hashed)."""

    __tablename__ = "log_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: upload, yank, unyank, status, remove, provenance-import (also inside ``data``).
    kind: Mapped[str] = mapped_column(String(30))
    #: The file an entry is about, if any: lets fsck match files to their upload entries.
    filename: Mapped[str | None] = mapped_column(String(300), default=None, index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LogHash(Base):
    """The log's stored hashes (RFC 6962 subtree hashes, Go tlog's StoredHashIndex layout)."""

    __tablename__ = "log_hashes"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LogCheckpoint(Base):
    """Signed checkpoints, newest (largest size) served. Every worker serves the same note; a
    new one is signed at most every ``log_checkpoint_interval`` seconds (assay.log.publish)."""

    __tablename__ = "log_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    note: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LogWitness(Base):
    """A witness whose cosignatures the index accepts (``assay admin log witness add``): a
    C2SP tlog-cosignature verifier key (``<name>+<key ID>+<base64(0x04 || key)>``) under a
    label the admin chose. ``index_id`` 1 is the default index (named indexes: issue 11)."""

    __tablename__ = "log_witnesses"
    __table_args__ = (UniqueConstraint("index_id", "label"), UniqueConstraint("index_id", "vkey"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
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
    index_id: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    witness_id: Mapped[int] = mapped_column(ForeignKey("log_witnesses.id", ondelete="CASCADE"))
    text_sha256: Mapped[str] = mapped_column(String(64))
    #: The whole signature line, ``— <name> <base64(key ID || timestamp || signature)>\n``.
    line: Mapped[str] = mapped_column(String(500))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
