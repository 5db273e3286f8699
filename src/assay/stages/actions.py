"""Approving and rejecting a stage (issue 14).

Approval needs a user who owns the project, their TOTP code (``assay.accounts.totp``) and,
under four eyes, someone other than whoever triggered the stage's uploads. It goes live in
one transaction: every file row, the release if new, the project's serial, the audit events
and the files' transparency-log entries (``log.store.append_upload``, last, as every writer
appends) commit together or not at all. The blobs are in place since the upload, under their
final keys, so nothing outside the database moves: a process killed at any moment leaves the
stage either wholly live or wholly staged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from packaging.utils import InvalidName, canonicalize_name, canonicalize_version
from sqlalchemy.orm import Session

from assay import audit
from assay.accounts import totp
from assay.accounts.auth import AuthError, Principal, check_upload_allowed, role_on
from assay.indexes import IndexRef
from assay.log import approvals, entries, note
from assay.log import store as translog
from assay.stages import rebuild_gate, store
from assay.storage import releases
from assay.storage.blobs import BlobStore
from assay.storage.changes import project_changed
from assay.storage.db import Database
from assay.storage.models import (
    ApprovalStatement,
    File,
    Project,
    StageApproval,
    StagedFile,
    User,
    utcnow,
)

#: PEP 792: these statuses take no new files (as ``upload.service.CLOSED_STATUSES``).
CLOSED_STATUSES = frozenset({"archived", "quarantined"})


class StageError(Exception):
    """A refused stage action: ``status`` is the HTTP status, the message says why."""

    def __init__(self, message: str, status: int, reason: str = "refused") -> None:
        super().__init__(message)
        self.status = status
        #: For the audit log's refusals: "totp", "four-eyes", "not-owner", ...
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Approved:
    project: str
    version: str
    #: "approved" (live) or "pending" (M of N: more owners must approve).
    status: str
    files: tuple[str, ...]
    log_indexes: tuple[int, ...]
    approvers: tuple[str, ...]
    required: int


def find_project(session: Session, index: IndexRef, name: str) -> Project:
    try:
        # Validated: junk (a NUL, say) never reaches the database, where PostgreSQL refuses it.
        normalized = canonicalize_name(name, validate=True)
    except InvalidName:
        raise StageError(f"No project named {name!r} on this index.", 404, "no-project") from None
    project = session.execute(
        sa.select(Project).where(Project.index_id == index.id, Project.normalized_name == normalized)
    ).scalar_one_or_none()
    if project is None:
        raise StageError(f"No project named {name!r} on this index.", 404, "no-project")
    return project


def may_read(session: Session, who: Principal, project: Project) -> None:
    """Seeing a project's stages: whoever may upload to it (its owners and maintainers, a token
    scoped to it, its trusted publisher's minted token: CI reads the preview URL back)."""
    try:
        check_upload_allowed(session, who, project.normalized_name, project)
    except AuthError as exc:
        raise StageError(str(exc), 403, "not-allowed") from None


def _require_user(session: Session, who: Principal, project: Project, action: str) -> str:
    if who.kind != "user" or who.user_id is None:
        # Issue 14: a CI credential (a stage-only publisher's above all) may at most create a stage.
        raise StageError(f"Only a user's API token may {action} a stage, not a trusted publisher's.", 403, "not-user")
    may_read(session, who, project)
    role = role_on(session, who.user_id, project.id)
    if role is None:
        raise StageError(
            f"The user {who.username!r} is not an owner or maintainer of {project.normalized_name!r}.", 403, "not-owner"
        )
    return role


def _four_eyes_violation(username: str, files: list[StagedFile]) -> str | None:
    """Who triggered an upload, if it is ``username`` (a CI login is matched to an assay
    username by name, case-insensitively: see docs/releases.md)."""
    mine = {f"user:{username}".lower(), f"ci:{username}".lower()}
    for f in files:
        if f.triggered_by.lower() in mine:
            return f.triggered_by
    return None


def statement_text(
    origin: str,
    project: str,
    version: str,
    stage_id: str,
    approvers: tuple[str, ...],
    files: list[StagedFile],
    when: dt.datetime,
) -> str:
    """The approval's signed statement (the text of a C2SP signed note, one fact a line): what
    went live, with which digests, approved by whom and when, triggered by whom."""

    def clean(value: str) -> str:
        # A note's text holds no control characters (C2SP signed-note); names are validated
        # at upload, a CI login comes from a verified token but is not ours to trust.
        return "".join(ch if ch >= " " else "?" for ch in value)

    lines = [
        "assay release approval v1",
        f"index {clean(origin)}",
        f"project {project}",
        f"version {version}",
        f"stage {stage_id}",
        f"approved {when.astimezone(dt.UTC).isoformat().replace('+00:00', 'Z')}",
        *(f"approver {clean(a)}" for a in approvers),
        *(f"triggered-by {clean(t)}" for t in sorted({f.triggered_by for f in files})),
        *(f"file sha256:{f.sha256} {f.filename}" for f in sorted(files, key=lambda f: f.filename)),
    ]
    return "\n".join(lines) + "\n"


def approve(
    db: Database,
    index: IndexRef,
    name: str,
    version: str,
    who: Principal,
    code: str,
    remote_addr: str | None,
    signer: note.Signer | None = None,
) -> Approved:
    if not totp.well_formed(code):
        raise StageError("The TOTP code must be 6 digits (from the authenticator app enrolled for you).", 400, "totp")
    with db.write() as session:
        project = find_project(session, index, name)
        role = _require_user(session, who, project, "approve")
        if role != "owner":
            raise StageError(
                f"Approving needs an owner of {project.normalized_name!r}; {who.username!r} is a {role}.",
                403,
                "not-owner",
            )
        stage = store.stage_of(session, project, version, lock=True)
        if stage is None:
            raise StageError(f"No open stage for {project.normalized_name} {version}.", 404, "no-stage")
        if project.status in CLOSED_STATUSES:
            # PEP 792: an archived or quarantined project takes no new files, staged ones neither.
            raise StageError(
                f"Project {project.normalized_name!r} is {project.status}: nothing can go live (PEP 792).",
                409,
                "closed",
            )
        files = store.staged_files(session, stage.id)
        if short := rebuild_gate.unreproduced(session, project, files):
            # Checked before the TOTP code, so a refused approval does not use it up.
            raise StageError(
                f"{project.normalized_name} {stage.version} needs {project.rebuilds_required} independent "
                f"rebuilds of every wheel before approval (assay rebuild): " + "; ".join(short),
                409,
                "rebuilds",
            )
        if project.four_eyes and (trigger := _four_eyes_violation(who.username or "", files)):
            raise StageError(
                f"Four eyes: {who.username!r} triggered this stage's upload ({trigger}); another owner must approve.",
                403,
                "four-eyes",
            )
        user = session.execute(sa.select(User).where(User.id == who.user_id).with_for_update()).scalar_one()
        if user.totp_secret is None:
            raise StageError(
                f"The user {user.username!r} has no TOTP enrolled (assay admin user totp enable); approving needs it.",
                403,
                "totp",
            )
        step = totp.matching_step(user.totp_secret, code, user.totp_last_step)
        if step is None:
            raise StageError("Wrong or already used TOTP code.", 403, "totp")
        user.totp_last_step = step
        # M of N: each owner approves once; the last approval needed makes it live.
        if session.get(StageApproval, (stage.id, user.id)) is not None:
            raise StageError(
                f"{user.username!r} has approved this stage already; another owner must approve too.",
                409,
                "already-approved",
            )
        session.add(StageApproval(stage_id=stage.id, user_id=user.id, time=utcnow()))
        session.flush()
        approvers = tuple(store.approvers(session, stage.id))
        required = max(1, project.approvals_required)
        if len(approvers) < required:
            audit.record(
                session,
                actor=who.actor,
                action="stage:approval",
                project=project.normalized_name,
                target=stage.version,
                token_id=who.token_id,
                remote_addr=remote_addr,
                details={"stage": stage.id, "approvers": list(approvers), "required": required},
            )
            return Approved(project.normalized_name, stage.version, "pending", (), (), approvers, required)
        stage_id, stage_version = stage.id, stage.version
        signed: str | None = None
        if signer is not None:
            # Issue 14: the approval as a statement signed by the index's key (its log key,
            # under the index's origin: /log/key is the verifier key).
            text = statement_text(
                signer.name, project.normalized_name, stage_version, stage_id, approvers, files, utcnow()
            )
            signed = note.sign(text, [signer]).decode()
            session.add(
                ApprovalStatement(
                    index_id=project.index_id,
                    project_id=project.id,
                    canonical_version=canonicalize_version(stage_version),
                    note=signed,
                )
            )
        _go_live(session, project, stage.version, files, signed)
        project_changed(session, project, listing_changed=False)
        triggered = sorted({f.triggered_by for f in files})
        for f in files:
            audit.record(
                session,
                actor=who.actor,
                action="file:upload",
                project=project.normalized_name,
                target=f.filename,
                token_id=who.token_id,
                remote_addr=remote_addr,
                details={
                    "version": stage.version,
                    "sha256": f.sha256,
                    "size": f.size,
                    "stage": stage_id,
                    "triggered_by": f.triggered_by,
                },
            )
        audit.record(
            session,
            actor=who.actor,
            action="stage:approve",
            project=project.normalized_name,
            target=stage.version,
            token_id=who.token_id,
            remote_addr=remote_addr,
            details={
                "stage": stage_id,
                "files": [f.filename for f in files],
                "sha256": {f.filename: f.sha256 for f in files},
                "triggered_by": triggered,
                "second_factor": "totp",
                "four_eyes": project.four_eyes,
                "approvers": list(approvers),
                "required": required,
            },
        )
        live = [(f.filename, f.publisher_id) for f in files]
        digests = {f.filename: f.sha256 for f in files}
        store.delete_rows(session, stage)
        # Last: the log's lock (every writer appends as its transaction's last statement).
        indexes = tuple(translog.append_upload(session, index.id, filename, pid) for filename, pid in live)
        # Issue 14 item 2: "once the transparency-log issue lands, also logged there".
        approval = entries.approval(
            project.normalized_name, stage_version, stage_id, approvers=list(approvers), triggered_by=triggered,
            files=digests, statement=signed.encode() if signed is not None else None, when=utcnow(),
        )
        translog.append(session, index.id, approval)
        return Approved(
            project.normalized_name, stage_version, "approved", tuple(n for n, _ in live), indexes, approvers, required
        )


def _go_live(session: Session, project: Project, version: str, files: list[StagedFile], statement: str | None) -> None:
    release = releases.find(session, project.id, version)
    if release is None:
        first = files[0] if files else None
        release = releases.create(
            session,
            project.id,
            version,
            requires_python=first.requires_python if first else None,
            core_metadata=first.core_metadata if first else {},
        )
    for f in files:
        session.add(
            File(
                index_id=project.index_id,
                release_id=release.id,
                project_id=project.id,
                filename=f.filename,
                packagetype=f.packagetype,
                python_version=f.python_version,
                size=f.size,
                sha256=f.sha256,
                blake2_256=f.blake2_256,
                md5=f.md5,
                # PEP 700's upload-time: when it went live (installers' --exclude-newer / uv's
                # exclude-newer compare with it; the staging time is in the audit log).
                upload_time=utcnow(),
                requires_python=f.requires_python,
                blob_key=f.blob_key,
                metadata_blob_key=f.metadata_blob_key,
                metadata_sha256=f.metadata_sha256,
                uploaded_by_user_id=f.uploaded_by_user_id,
                uploaded_by_token_id=f.uploaded_by_token_id,
                publisher_claims=f.publisher_claims,
                # Issue 14, item 5: an attested file's PEP 740 provenance carries the signed
                # approval statement too (before its log entry is appended, so the logged
                # provenance digest is of what the Integrity API serves).
                provenance=approvals.with_statement(f.provenance, statement)
                if f.provenance is not None and statement is not None
                else f.provenance,
            )
        )


def statements(session: Session, index: IndexRef, name: str, version: str) -> list[str]:
    """The signed approval statements of ``name``'s release ``version``, oldest first."""
    project = find_project(session, index, name)
    return list(
        session.execute(
            sa.select(ApprovalStatement.note)
            .where(
                ApprovalStatement.project_id == project.id,
                ApprovalStatement.canonical_version == canonicalize_version(version),
            )
            .order_by(ApprovalStatement.id)
        ).scalars()
    )


def reject(
    db: Database,
    blobs: BlobStore,
    index: IndexRef,
    name: str,
    version: str,
    who: Principal,
    reason: str | None,
    remote_addr: str | None,
) -> tuple[str, ...]:
    """An owner or maintainer throws a stage away: rows now, blobs right after (``store``)."""
    with db.write() as session:
        project = find_project(session, index, name)
        _require_user(session, who, project, "reject")
        stage = store.stage_of(session, project, version, lock=True)
        if stage is None:
            raise StageError(f"No open stage for {project.normalized_name} {version}.", 404, "no-stage")
        files = tuple(f.filename for f in store.staged_files(session, stage.id))
        audit.record(
            session,
            actor=who.actor,
            action="stage:reject",
            project=project.normalized_name,
            target=stage.version,
            token_id=who.token_id,
            remote_addr=remote_addr,
            details={"stage": stage.id, "files": list(files), "reason": reason},
        )
        keys = store.drop_stage(session, stage)
    store.remove_blobs(db, blobs, keys)
    return files
