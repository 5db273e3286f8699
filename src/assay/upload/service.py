"""Accepting an upload: validate, authorize, then publish blobs and commit rows atomically.

Order matters for crash safety (rule: a crash never leaves half a file visible, a rejected
upload leaves no trace):

1. the distribution and its metadata file are written to staging (invisible);
2. everything is validated and authorized;
3. the blobs are renamed into place (still invisible: nothing references them);
4. one database transaction adds project/release/file rows and the audit event.

If step 4 fails, the blobs published in step 3 are removed unless a committed row (a concurrent
identical upload that won the race) uses them. A process killed between 3 and 4 leaves an
unreferenced blob, which no reader can reach and ``assay admin fsck`` removes.

If the database goes away in the middle (issue 10, item 10), that clean-up cannot run either:
the journal entry and the blob stay, owned by a process that is still alive, so start-up
recovery does not take them and an identical retry waited 60 s for an upload that was long
over. The process therefore keeps, in memory, the keys it holds (``_Claims``) and the keys it
could not clean up; a sweep (``Uploader.sweep``, run periodically by the application and before
each upload) finishes the clean-up once the database answers again, and a retry that finds an
entry of this very process that no request of it holds takes that entry over at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assay import audit
from assay.accounts.auth import AuthError, Principal, check_upload_allowed
from assay.index.paths import blob_key, metadata_key
from assay.indexes import DEFAULT, IndexRef
from assay.log import store as translog
from assay.storage import recovery, releases
from assay.storage.blobs import HOST, BlobStore, StagedBlob, process_alive
from assay.storage.changes import project_changed
from assay.storage.db import Database
from assay.storage.models import (
    ApiToken,
    File,
    PendingBlob,
    PendingPublisher,
    Project,
    Release,
    Role,
    StagedFile,
    UsedFilename,
    utcnow,
)
from assay.storage.references import blob_referenced
from assay.upload import staging
from assay.upload.dists import ArchiveLimits, DistError, check_agreement, parse_filename, read_metadata
from assay.upload.form import UploadForm

log = logging.getLogger(__name__)

#: PEP 792: uploads are refused for these statuses.
CLOSED_STATUSES = {"archived", "quarantined"}


#: Why an upload is refused, for the log and the audit (``assay.web.refusals``); a refused
#: credential is an ``AuthRefusal`` instead.
UploadRefusal = Literal[
    "invalid",  # a malformed upload or one the rules forbid (an honest client's mistake)
    "conflict",  # the filename or the bytes are taken, or the same file is being uploaded now
    "too-large",
    "unavailable",  # the index cannot take it now (5xx)
    "forbidden",
    "wrong-project",  # a good credential for a project it may not upload to
    "project-closed",  # PEP 792: archived or quarantined
    "token-reused",  # a single-use token (PEP 807) presented again
    "bad-attestation",  # PEP 740 attestations that do not verify
]
_BY_STATUS: dict[int, UploadRefusal] = {403: "forbidden", 409: "conflict", 413: "too-large"}


class UploadRejected(Exception):
    """An upload is refused. ``status`` is the HTTP status; the message is shown to the client;
    ``code`` says why (by default what the status means)."""

    def __init__(self, message: str, status: int = 400, code: UploadRefusal | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code: UploadRefusal = code or ("unavailable" if status >= 500 else _BY_STATUS.get(status, "invalid"))


@dataclass
class UploadResult:
    filename: str
    project: str
    version: str
    created: bool  # False: an identical file was already there (idempotent re-upload)
    sha256: str
    #: The file's ``upload`` entry in the transparency log (None: the file was already there).
    log_index: int | None = None
    #: Issue 14: the stage the file landed in (None: it went live).
    stage_id: str | None = None


@dataclass(frozen=True, slots=True)
class Provenance:
    """PEP 740 provenance proven for an upload by its attestations (``assay.attestations``)."""

    #: The provenance object stored with the file and served by the Integrity API.
    document: dict[str, Any]
    #: The predicate types of the verified attestations, in the order sent.
    predicates: tuple[str, ...]
    #: Who signed them (``Identity.summary()``), for the audit log.
    attested_by: str

    def audit_details(self) -> dict[str, Any]:
        return {"attestations": list(self.predicates), "attested_by": self.attested_by}


@dataclass
class PreparedUpload:
    """A validated upload whose blobs are staged but not yet published."""

    filename: str
    normalized: str
    display_name: str
    version: str
    packagetype: str
    python_version: str
    size: int
    sha256: str
    blake2_256: str
    md5: str
    requires_python: str | None
    core_metadata: dict[str, Any]
    content: StagedBlob
    metadata: StagedBlob | None
    metadata_sha256: str | None
    #: Set by the attestation service before the commit (None: the upload has no attestations).
    provenance: Provenance | None = None


def _require(form: UploadForm, name: str) -> str:
    value = form.get(name)
    if value is None or value == "":
        raise UploadRejected(f"Missing required form field {name!r}.")
    return value


def prepare(form: UploadForm, blobs: BlobStore, limits: ArchiveLimits) -> PreparedUpload:
    """Check the form and the file itself; stage the metadata file. Raises ``UploadRejected``."""
    action = form.get(":action")
    if action != "file_upload":
        raise UploadRejected(
            f"Unsupported ':action' {action!r}: this endpoint accepts 'file_upload'."
            if action
            else "Missing required form field ':action' (expected 'file_upload')."
        )
    protocol = form.get("protocol_version")
    if protocol not in (None, "1"):
        raise UploadRejected(f"Unsupported protocol_version {protocol!r}: expected '1'.")
    if form.content is None:
        raise UploadRejected("Missing the 'content' file part: upload a distribution file.")
    content = form.content
    if content.size == 0:
        raise UploadRejected("The uploaded file is empty.")
    try:
        dist = parse_filename(content.filename)
    except DistError as exc:
        raise UploadRejected(str(exc)) from None

    name = _require(form, "name")
    version = _require(form, "version")
    filetype = _require(form, "filetype")
    if filetype != dist.packagetype:
        raise UploadRejected(
            f"The form says filetype {filetype!r}, but {dist.filename!r} is a "
            f"{'wheel (bdist_wheel)' if dist.is_wheel else 'source distribution (sdist)'}."
        )

    # Digests: the client must send at least one, and every one it sends must match (PyPI).
    digests = {
        "sha256_digest": content.sha256,
        "blake2_256_digest": content.blake2_256,
        "md5_digest": content.md5,
    }
    sent = {k: (form.get(k) or "").strip().lower() for k in digests if form.get(k)}
    if not sent:
        raise UploadRejected(
            "Include at least one message digest (sha256_digest, blake2_256_digest or md5_digest)."
        )
    for key, value in sent.items():
        if value != digests[key]:
            raise UploadRejected(
                f"The {key} in the form ({value!r}) does not match the uploaded file "
                f"({digests[key]!r}): the file was corrupted in transit or the form is wrong."
            )

    try:
        meta = read_metadata(content.staged.path, dist, limits)
        check_agreement(dist, meta, name, version)
    except DistError as exc:
        raise UploadRejected(str(exc)) from None

    metadata_blob: StagedBlob | None = None
    metadata_sha256: str | None = None
    if dist.is_wheel:
        # PEP 658: serve the wheel's METADATA, byte for byte, next to the wheel.
        metadata_blob = blobs.stage()
        try:
            metadata_blob.write(meta.raw)
            metadata_blob.close()
        except BaseException:
            # Nobody else holds this blob yet: the caller only discards what ``prepare``
            # returns. A full disk (ENOSPC at write or at close) used to leave it in staging.
            metadata_blob.discard()
            raise
        metadata_sha256 = hashlib.sha256(meta.raw).hexdigest()

    return PreparedUpload(
        filename=dist.filename,
        normalized=dist.name,
        display_name=meta.name,
        version=meta.version,
        packagetype=dist.packagetype,
        python_version=dist.python_version,
        size=content.size,
        sha256=content.sha256,
        blake2_256=content.blake2_256,
        md5=content.md5,
        requires_python=meta.requires_python,
        core_metadata=meta.fields,
        content=content.staged,
        metadata=metadata_blob,
        metadata_sha256=metadata_sha256,
    )


def _existing(session: Session, index_id: int, filename: str) -> File | None:
    return session.execute(
        sa.select(File).where(File.index_id == index_id, File.filename == filename)
    ).scalar_one_or_none()


def _project(session: Session, index_id: int, normalized: str) -> Project | None:
    return session.execute(
        sa.select(Project).where(Project.index_id == index_id, Project.normalized_name == normalized)
    ).scalar_one_or_none()


def _check_duplicate(session: Session, index_id: int, up: PreparedUpload) -> bool:
    """True when an identical file exists (answer 200, as PyPI does, so ``twine upload
    --skip-existing`` and ``uv publish`` treat it as done). Different bytes: refuse."""
    # The used-filename record is read before the file row, not after: under READ COMMITTED
    # (PostgreSQL) each statement sees the latest commits, so with the reads the other way round
    # a concurrent upload of this name committing in between (file row and record in one
    # transaction) showed us its record but not its file, and the loser of the race was told
    # "already been used" instead of "File already exists" (tests/reliability/test_races.py).
    used = session.get(UsedFilename, (index_id, up.filename))
    existing = _existing(session, index_id, up.filename)
    if existing is not None:
        if existing.sha256 == up.sha256:
            return True
        # PyPI's wording; twine --skip-existing looks for "already exist" in a 400 answer.
        raise UploadRejected(
            f"File already exists ({up.filename!r}, with sha256 hash {existing.sha256}) and the "
            "uploaded file is different. A filename can be used only once; upload a new version.",
            code="conflict",
        )
    same_bytes = session.execute(
        sa.select(File.filename).where(
            File.index_id == index_id, File.sha256 == up.sha256, File.filename != up.filename
        )
    ).first()
    if same_bytes is not None:
        # PyPI (Warehouse's _is_duplicate_file): the same bytes under another name, e.g. a wheel
        # renamed to claim other tags, are refused as a duplicate.
        raise UploadRejected(
            f"File already exists: the same file was uploaded as {same_bytes[0]!r}; "
            f"the bytes of {up.filename!r} are identical to it.",
            code="conflict",
        )
    staged = staging.staged_duplicate(session, index_id, up.filename, up.sha256)
    if staged is not None:
        if staged.filename == up.filename and staged.sha256 == up.sha256:
            return True  # the same file uploaded to its stage again
        # Issue 14: a stage's filenames (and bytes) are reserved while it waits for approval.
        raise UploadRejected(
            f"File already exists: {staged.filename!r} is in a stage awaiting approval "
            + ("with other bytes." if staged.filename == up.filename else f"with the bytes of {up.filename!r}."),
            code="conflict",
        )
    if used is not None:
        # PyPI: a deleted file's name can never be used again.
        raise UploadRejected(
            f"This filename has already been used ({up.filename!r}); use a different version.", code="conflict"
        )
    return False


def _check_one_sdist(session: Session, up: PreparedUpload, project_id: int) -> None:
    """PyPI rule: "Only one sdist may be uploaded per release" (a .tar.gz and a .zip of one
    version would leave installers two different sources to choose from)."""
    if up.packagetype != "sdist":
        return
    other = session.execute(
        sa.select(File.filename)
        .join(Release, File.release_id == Release.id)
        .where(
            Release.project_id == project_id,
            Release.canonical_version == canonicalize_version(up.version),
            File.packagetype == "sdist",
            File.filename != up.filename,
        )
    ).first()
    if other is not None:
        raise UploadRejected(
            f"Only one sdist may be uploaded per release: version {up.version} already has {other[0]!r}."
        )
    # Issue 14: an sdist waiting in the release's stage counts too.
    staged = staging.staged_sdist_of_release(session, project_id, up.version)
    if staged is not None and staged != up.filename:
        raise UploadRejected(
            f"Only one sdist may be uploaded per release: the stage of {up.version} already has {staged!r}."
        )


#: Valid pending publishers that reserve a name (``--reserve``), with the users they name as owner.
_RESERVING = sa.select(PendingPublisher.owner_id).where(
    PendingPublisher.index_id == sa.bindparam("index_id"),
    PendingPublisher.normalized_name == sa.bindparam("name"),
    PendingPublisher.reserve.is_(True),
    PendingPublisher.expires > sa.bindparam("now"),
)


def _check_not_reserved(session: Session, who: Principal, normalized: str) -> None:
    """A pending publisher registered with ``--reserve`` keeps its project name for its own first
    trusted publish (PyPI's pending publishers reserve nothing, so anyone may register the name
    first; issue 10 item 9). Only the user it names as the project's owner may still create it
    (they would own it either way); the reservation lapses when it is used, removed or expires."""
    owners = set(
        session.execute(_RESERVING, {"index_id": who.index_id, "name": normalized, "now": utcnow()}).scalars()
    )
    if owners and (who.user_id is None or who.user_id not in owners):
        raise UploadRejected(
            f"The name {normalized!r} is reserved for a pending trusted publisher: its first trusted "
            "publish creates the project. Ask an admin to remove the pending publisher to release the name.",
            403,
        )


@dataclass
class UploadContext:
    who: Principal
    remote_addr: str | None
    #: The index uploaded to (the URL's; ``who``'s token is valid on it, authentication checked).
    index: IndexRef = DEFAULT


#: How long an upload waits for another upload of the very same file to finish.
JOURNAL_WAIT = 60.0


class _Claims:
    """The blob keys a request of this process is working on right now, and those whose
    journal entries a failed clean-up left behind (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: set[str] = set()
        self.unfinished: set[str] = set()

    def claim(self, keys: list[str], timeout: float) -> bool:
        """Wait until no other request of this process holds any of ``keys``, then hold them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._held.intersection(keys):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self._held.update(keys)
            return True

    def try_claim(self, key: str) -> bool:
        with self._cond:
            if key in self._held:
                return False
            self._held.add(key)
            return True

    def release(self, keys: list[str]) -> None:
        with self._cond:
            self._held.difference_update(keys)
            self._cond.notify_all()

    def leave_unfinished(self, key: str) -> None:
        with self._cond:
            self.unfinished.add(key)

    def finished(self, key: str) -> None:
        with self._cond:
            self.unfinished.discard(key)

    def pending(self) -> list[str]:
        with self._cond:
            return sorted(self.unfinished)


class Uploader:
    def __init__(self, db: Database, blobs: BlobStore, stage_ttl: float = 7 * 24 * 3600.0) -> None:
        self.db = db
        self.blobs = blobs
        self.claims = _Claims()
        #: Seconds a stage waits for approval (issue 14; setting ``stage_ttl``).
        self.stage_ttl = stage_ttl

    def sweep(self) -> int:
        """Finish the clean-ups that failed while the database was unavailable; returns how many
        keys are done. Keys held by a request right now are left for the next sweep."""
        done = 0
        for key in self.claims.pending():
            if not self.claims.try_claim(key):
                continue
            try:
                self._clear_own_entry(key)
            except Exception as exc:  # still unavailable: the next sweep tries again
                log.info("could not yet clean up after a failed upload (%s): %s", key, exc)
                return done
            else:
                self.claims.finished(key)
                done += 1
            finally:
                self.claims.release([key])
        if done:
            log.info("cleaned up %d blob key(s) left by uploads that failed while the database was down", done)
        return done

    def _clear_own_entry(self, key: str) -> None:
        """Remove this process's journal entry for ``key`` and, if no file row refers to the blob,
        the blob, in one transaction. The caller holds the claim on ``key``, so no request of this
        process is using the entry; and while the entry exists no other process can journal (so
        publish) this key. Without an entry of ours there is nothing of ours to remove."""
        with self.db.write() as session:
            mine = session.execute(
                sa.delete(PendingBlob).where(
                    PendingBlob.key == key, PendingBlob.host == HOST, PendingBlob.pid == os.getpid()
                )
            ).rowcount  # type: ignore[attr-defined]
            if not mine:
                return
            if not blob_referenced(session, key):
                self.blobs.delete(key)  # a no-op when nothing was published

    def commit(self, up: PreparedUpload, ctx: UploadContext) -> UploadResult:
        """Authorize and store ``up``. Always cleans up after itself, whatever happens."""
        index = ctx.index
        key = blob_key(up.sha256, up.filename, index)
        mkey = metadata_key(key)
        keys = [key, mkey] if up.metadata is not None else [key]
        journaled = False
        claimed = False
        if self.claims.unfinished:
            self.sweep()
        try:
            while True:
                # Cheap checks before touching the blob store.
                with self.db.read() as session:
                    project = _project(session, index.id, up.normalized)
                    self._authorize(session, ctx.who, up, project)
                    if _check_duplicate(session, index.id, up):
                        return UploadResult(up.filename, up.normalized, up.version, False, up.sha256)
                    if project is not None:
                        _check_one_sdist(session, up, project.id)
                # Another request of this process uploading the very same file: wait for it.
                if not self.claims.claim(keys, JOURNAL_WAIT):
                    raise UploadRejected("Another upload of this very file is still in progress; retry later.", 409)
                claimed = True
                if self._journal(keys):
                    journaled = True
                    break
                # The very same file is being uploaded by another process right now, or an earlier
                # attempt left its entry: wait for that upload to finish (or take the stale entry
                # over), then answer as for any identical re-upload.
                self._wait_for(keys)
                self.claims.release(keys)
                claimed = False

            self.blobs.publish(up.content, key)
            if up.metadata is not None:
                self.blobs.publish(up.metadata, mkey)

            for attempt in range(5):
                try:
                    result = self._commit_rows(up, ctx, key, mkey, keys)
                except _Identical:
                    # Its row refers to the very blob keys we just published (same bytes, same
                    # name): clearing our journal keeps them. An identical re-upload: 200.
                    self._abandon(keys)
                    journaled = False
                    return UploadResult(up.filename, up.normalized, up.version, False, up.sha256)
                except IntegrityError:
                    # A concurrent upload created the same project or release first, or claimed
                    # the one sdist of this release or these bytes under another name. Re-check
                    # against the state it left; the checks raise the right refusal.
                    log.info("upload of %s raced another writer (attempt %d)", up.filename, attempt + 1)
                    with self.db.read() as session:
                        _check_duplicate(session, index.id, up)
                        project = _project(session, index.id, up.normalized)
                        if project is not None:
                            _check_one_sdist(session, up, project.id)
                    continue
                journaled = False  # the rows own the blobs, and the journal entries are gone
                return result
            raise UploadRejected("The upload kept conflicting with concurrent uploads; retry.", 409)
        except BaseException:
            if claimed and not journaled:
                # The journal insert itself failed (the database went away): it may have been
                # committed without our hearing of it, so the sweep looks for an entry of ours.
                for k in keys:
                    self.claims.leave_unfinished(k)
            raise
        finally:
            if journaled:
                self._abandon(keys)
            if claimed:
                self.claims.release(keys)
            up.content.discard()
            if up.metadata is not None:
                up.metadata.discard()

    def _journal(self, keys: list[str]) -> bool:
        """Record the blobs about to be published (committed before the rename, so a crash after
        it is recoverable). False when another upload holds one of the keys."""
        try:
            with self.db.write() as session:
                for k in keys:
                    session.add(PendingBlob(key=k, host=HOST, pid=os.getpid()))
        except IntegrityError:
            return False
        return True

    def _wait_for(self, keys: list[str]) -> None:
        """Wait until no journal entry holds ``keys``. The caller holds the claim on them, so an
        entry of this very process belongs to no request any more: an attempt whose clean-up
        failed (the database was down). It is taken over at once instead of waited for."""
        deadline = time.monotonic() + JOURNAL_WAIT
        while time.monotonic() < deadline:
            with self.db.read() as session:
                holders = list(session.execute(sa.select(PendingBlob).where(PendingBlob.key.in_(keys))).scalars())
            if not holders:
                return
            own = [h for h in holders if h.host == HOST and h.pid == os.getpid()]
            if own:
                for h in own:
                    self._clear_own_entry(h.key)
                    self.claims.finished(h.key)
                continue
            if all(h.host == HOST and not process_alive(h.pid) for h in holders):
                recovery.recover(self.db, self.blobs)  # the holder was killed: clean up after it
                continue
            time.sleep(0.05)
        raise UploadRejected("Another upload of this very file is still in progress; retry later.", 409)

    def _abandon(self, keys: list[str]) -> None:
        """Undo a publish whose rows were not committed: remove each blob no row refers to, in the
        transaction that clears its journal entry (see ``assay.storage.recovery``)."""
        for k in keys:
            try:
                with self.db.write() as session:
                    if not blob_referenced(session, k):
                        self.blobs.delete(k)
                    session.execute(sa.delete(PendingBlob).where(PendingBlob.key == k))
            except Exception as exc:
                # Typically the database is down: the sweep finishes this once it is back.
                log.warning("could not clean up blob %s after a failed upload (retried later): %s", k, exc)
                self.claims.leave_unfinished(k)

    def _authorize(self, session: Session, who: Principal, up: PreparedUpload, project: Project | None) -> None:
        try:
            check_upload_allowed(session, who, up.normalized, project)
        except AuthError as exc:
            code: UploadRefusal | None = "wrong-project" if exc.code == "wrong-project" else None
            raise UploadRejected(str(exc), exc.status, code) from None
        if project is not None and project.status in CLOSED_STATUSES:
            raise UploadRejected(
                f"Project {up.normalized!r} is {project.status}: it accepts no new uploads (PEP 792).",
                403,
                "project-closed",
            )
        if project is None and who.kind != "publisher":
            _check_not_reserved(session, who, up.normalized)

    def _commit_rows(
        self, up: PreparedUpload, ctx: UploadContext, key: str, mkey: str, keys: list[str]
    ) -> UploadResult:
        who = ctx.who
        index_id = ctx.index.id
        with self.db.write() as session:
            project = _project(session, index_id, up.normalized)
            # Re-check inside the write transaction: roles or status may have changed.
            self._authorize(session, who, up, project)
            if _check_duplicate(session, index_id, up):
                # An identical upload committed between our first check and our journal entry.
                raise _Identical()
            if who.single_use:
                used = session.execute(
                    sa.update(ApiToken)
                    .where(ApiToken.id == who.token_id, ApiToken.revoked.is_(None))
                    .values(revoked=utcnow())
                ).rowcount  # type: ignore[attr-defined]
                if not used:
                    raise UploadRejected("This single-use token has already been used.", 403, "token-reused")
            if project is not None and staging.goes_to_stage(session, who, project):
                return self._stage_rows(session, up, ctx, project, key, mkey, keys)
            created_project = False
            if project is None:
                project = Project(index_id=index_id, name=up.display_name, normalized_name=up.normalized)
                session.add(project)
                session.flush()
                created_project = True
                if who.user_id is not None:
                    session.add(Role(project_id=project.id, user_id=who.user_id, role="owner"))
                audit.record(
                    session,
                    actor=who.actor,
                    action="project:create",
                    project=up.normalized,
                    token_id=who.token_id,
                    remote_addr=ctx.remote_addr,
                )
            release = releases.find(session, project.id, up.version)
            if release is not None:
                _check_one_sdist(session, up, project.id)
            else:
                release = releases.create(
                    session, project.id, up.version, requires_python=up.requires_python, core_metadata=up.core_metadata
                )
            session.add(
                File(
                    index_id=index_id,
                    release_id=release.id,
                    project_id=project.id,
                    filename=up.filename,
                    packagetype=up.packagetype,
                    python_version=up.python_version,
                    size=up.size,
                    sha256=up.sha256,
                    blake2_256=up.blake2_256,
                    md5=up.md5,
                    upload_time=utcnow(),
                    requires_python=up.requires_python,
                    blob_key=key,
                    metadata_blob_key=mkey if up.metadata is not None else None,
                    metadata_sha256=up.metadata_sha256,
                    uploaded_by_user_id=who.user_id,
                    uploaded_by_token_id=who.token_id,
                    publisher_claims=who.oidc_claims,
                    provenance=up.provenance.document if up.provenance is not None else None,
                )
            )
            session.add(UsedFilename(index_id=index_id, filename=up.filename))
            # The journal entries go in the same transaction that makes the rows own the blobs.
            session.execute(sa.delete(PendingBlob).where(PendingBlob.key.in_(keys)))
            project_changed(session, project, listing_changed=created_project)
            session.execute(
                sa.update(ApiToken).where(ApiToken.id == who.token_id).values(last_used=utcnow())
            )
            audit.record(
                session,
                actor=who.actor,
                action="file:upload",
                project=up.normalized,
                target=up.filename,
                token_id=who.token_id,
                remote_addr=ctx.remote_addr,
                details={
                    "version": up.version,
                    "sha256": up.sha256,
                    "size": up.size,
                    "created_project": created_project,
                    **(up.provenance.audit_details() if up.provenance is not None else {}),
                },
            )
            # Last: the log's lock.
            log_index = translog.append_upload(session, index_id, up.filename, who.publisher_id)
        return UploadResult(up.filename, up.normalized, up.version, True, up.sha256, log_index)

    def _stage_rows(
        self,
        session: Session,
        up: PreparedUpload,
        ctx: UploadContext,
        project: Project,
        key: str,
        mkey: str,
        keys: list[str],
    ) -> UploadResult:
        """Issue 14: the rows of a staged upload (``assay.upload.staging``), in the caller's
        transaction. No serial bump, no log entry: nothing any reader sees changes."""
        who = ctx.who
        try:
            stage = staging.open_stage(session, project, up.version, self.stage_ttl)
        except staging.StageExpired as exc:
            raise UploadRejected(str(exc), 409, "conflict") from None
        # PyPI's one sdist per release, counting the live release's and the stage's.
        _check_one_sdist(session, up, project.id)
        row = StagedFile(
            index_id=project.index_id,
            filename=up.filename,
            packagetype=up.packagetype,
            python_version=up.python_version,
            size=up.size,
            sha256=up.sha256,
            blake2_256=up.blake2_256,
            md5=up.md5,
            upload_time=utcnow(),
            requires_python=up.requires_python,
            blob_key=key,
            metadata_blob_key=mkey if up.metadata is not None else None,
            metadata_sha256=up.metadata_sha256,
            core_metadata=up.core_metadata,
            uploaded_by_user_id=who.user_id,
            uploaded_by_token_id=who.token_id,
            publisher_id=who.publisher_id,
            publisher_claims=who.oidc_claims,
            provenance=up.provenance.document if up.provenance is not None else None,
            triggered_by=staging.triggered_by(who),
        )
        staging.add_staged_file(session, stage, row)
        session.execute(sa.delete(PendingBlob).where(PendingBlob.key.in_(keys)))
        session.execute(sa.update(ApiToken).where(ApiToken.id == who.token_id).values(last_used=utcnow()))
        staging.record(session, stage, row, who, ctx.remote_addr, project.normalized_name)
        return UploadResult(up.filename, up.normalized, up.version, True, up.sha256, None, stage.id)


class _Identical(Exception):
    """Raised inside the write transaction (rolling it back) when an identical file was
    committed after the first duplicate check."""
