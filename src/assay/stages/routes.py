"""``/_/releases/``: the maintainers' API for stages (issue 14), what ``assay release`` calls,
like ``npm stage list|view|approve|reject``.

- ``GET  /_/releases/<project>/``                  the project's open stages
- ``GET  /_/releases/<project>/<version>/``        one stage: files, digests, preview URL
- ``POST /_/releases/<project>/<version>/approve`` ``{"totp": "123456"}``: goes live, atomically
- ``POST /_/releases/<project>/<version>/reject``  ``{"reason": "..."}`` (optional): removed

Every request carries an API token (``Authorization``, as for uploads). Answers are JSON; a
refusal is ``{"message": ...}`` with a 4xx status. Each request first purges expired stages.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from assay import audit, untrusted_json
from assay.accounts.auth import AuthError, Principal, authenticate
from assay.indexes import IndexRef
from assay.stages import actions, store
from assay.stages.actions import StageError
from assay.stages.services import StageServices, stage_services
from assay.web.access import open_index, request_index
from assay.web.responses import JSONError
from assay.web.urls import index_url

#: A stage's JSON is the maintainer's view of unreleased files: never cached.
NO_STORE = {"cache-control": "private, no-store"}
#: Largest request body these endpoints read (a TOTP code or a reason).
MAX_BODY = 16 * 1024


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def stage_json(view: store.StageView, preview_base: str) -> dict[str, Any]:
    return {
        "project": view.project,
        "version": view.version,
        "stage": view.id,
        "preview": f"{preview_base}/stage/{view.id}/simple/",
        "created": _iso(view.created),
        "expires": _iso(view.expires),
        "approvers": list(view.approvers),
        "files": [
            {
                "filename": f.filename,
                "packagetype": f.packagetype,
                "size": f.size,
                "digests": {"sha256": f.sha256, "blake2b_256": f.blake2_256, "md5": f.md5},
                "upload_time": _iso(f.upload_time),
                "triggered_by": f.triggered_by,
                "attested": f.attested,
            }
            for f in view.files
        ],
    }


def _who(svc: StageServices, request: Request, index: IndexRef) -> Principal:
    with svc.db.read() as session:
        return authenticate(
            session, request.headers.get("authorization"), svc.settings.token_prefix, index.id, index.name
        )


def _check_version(version: str) -> None:
    try:
        Version(version)
    except InvalidVersion:
        raise StageError(f"Invalid version {version!r} (PEP 440).", 400, "invalid") from None


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise StageError(f"Request body too large (at most {MAX_BODY} bytes).", 413, "invalid")
    if not raw.strip():
        return {}
    if "json" not in request.headers.get("content-type", "application/json"):
        raise StageError("Send the body as application/json.", 415, "invalid")
    try:
        doc = untrusted_json.loads(raw)
    except ValueError as exc:
        raise StageError(f"The body is not valid JSON: {exc}", 400, "invalid") from None
    if not isinstance(doc, dict):
        raise StageError("The body must be a JSON object.", 400, "invalid")
    return doc


async def _handle(request: Request, action: str) -> Response:
    svc = stage_services(request)
    index = request_index(request, svc)
    if isinstance(index, Response):
        return index
    remote = request.client.host if request.client else None
    project = request.path_params["project"]
    version = request.path_params.get("version")
    who: Principal | None = None
    try:
        body = await _body(request) if request.method == "POST" else {}
        who = await run_in_threadpool(_who, svc, request, index)
        await run_in_threadpool(store.purge_expired, svc.db, svc.blobs)
        if version is not None:
            _check_version(version)
        base = index_url(svc, request, index)
        if action == "list":
            return JSONResponse(await run_in_threadpool(_list, svc, index, project, who, base), headers=NO_STORE)
        assert version is not None
        if action == "show":
            shown = await run_in_threadpool(_show, svc, index, project, version, who, base)
            return JSONResponse(shown, headers=NO_STORE)
        if action == "approve":
            code = body.get("totp")
            if not isinstance(code, str):
                raise StageError('Approving needs your TOTP code: {"totp": "123456"}.', 400, "totp")
            signer = svc.log.signer_of(index)
            done = await run_in_threadpool(actions.approve, svc.db, index, project, version, who, code, remote, signer)
            return JSONResponse(
                {
                    "project": done.project,
                    "version": done.version,
                    "status": done.status,
                    "approvers": list(done.approvers),
                    "approvals_required": done.required,
                    "files": list(done.files),
                    "log_indexes": list(done.log_indexes),
                },
                headers=NO_STORE,
            )
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
            raise StageError("'reason' must be a string of at most 1000 characters.", 400, "invalid")
        files = await run_in_threadpool(actions.reject, svc.db, svc.blobs, index, project, version, who, reason, remote)
        return JSONResponse(
            {"project": project, "version": version, "status": "rejected", "files": list(files)}, headers=NO_STORE
        )
    except IntegrityError:
        # A live file took a staged file's place meanwhile (the same bytes under another name,
        # or an sdist of the release uploaded directly after the project went back to direct).
        return JSONError(
            409, "The stage conflicts with a file that went live meanwhile; reject it and upload a new version."
        )
    except AuthError as exc:
        headers = {"www-authenticate": 'Basic realm="assay"'} if exc.status == 401 else None
        return JSONError(exc.status, str(exc), headers=headers)
    except StageError as exc:
        if action == "approve" and exc.reason in ("totp", "four-eyes", "not-owner", "not-user", "already-approved"):
            # Security-relevant refusals are audited (issue 10, item 14).
            await run_in_threadpool(
                audit.record_refusal,
                svc.db,
                action="stage:approve-refused",
                reason=exc.reason,
                actor=who.actor if who else "anonymous",
                remote_addr=remote,
                project=project,
                token_id=who.token_id if who else None,
                details={"version": version},
            )
        return JSONError(exc.status, str(exc))


def _list(svc: StageServices, index: IndexRef, name: str, who: Principal, base: str) -> dict[str, Any]:
    with svc.db.read() as session:
        project = actions.find_project(session, index, name)
        actions.may_read(session, who, project)
        return {
            "project": project.normalized_name,
            "releases": project.releases_mode,
            "four_eyes": project.four_eyes,
            "approvals_required": project.approvals_required,
            "stages": [stage_json(v, base) for v in store.project_stages(session, project)],
        }


def _show(svc: StageServices, index: IndexRef, name: str, version: str, who: Principal, base: str) -> dict[str, Any]:
    with svc.db.read() as session:
        project = actions.find_project(session, index, name)
        actions.may_read(session, who, project)
        stage = store.stage_of(session, project, version)
        if stage is None:
            raise StageError(f"No open stage for {project.normalized_name} {version}.", 404, "no-stage")
        return stage_json(store.view(session, stage, project.normalized_name), base)


async def approval_statements(request: Request) -> Response:
    """``GET /_/releases/<project>/<version>/approvals``: the release's signed approval
    statements (public, as its files are; each a C2SP signed note by the key at /log/key)."""
    svc = stage_services(request)
    index = await run_in_threadpool(open_index, request, svc)
    if isinstance(index, Response):
        return index
    version = request.path_params["version"]

    def load() -> list[str]:
        _check_version(version)
        with svc.db.read() as session:
            return actions.statements(session, index, request.path_params["project"], version)

    try:
        notes = await run_in_threadpool(load)
    except StageError as exc:
        return JSONError(exc.status, str(exc))
    if not notes:
        return JSONError(404, f"No approved stage of version {version!r}.")
    return JSONResponse({"statements": notes, "key": index.prefix + "/log/key"})


async def list_stages(request: Request) -> Response:
    return await _handle(request, "list")


async def show_stage(request: Request) -> Response:
    return await _handle(request, "show")


async def approve_stage(request: Request) -> Response:
    return await _handle(request, "approve")


async def reject_stage(request: Request) -> Response:
    return await _handle(request, "reject")


routes = [
    Route("/_/releases/{project}/", list_stages, methods=["GET"]),
    Route("/_/releases/{project}/{version}/", show_stage, methods=["GET"]),
    Route("/_/releases/{project}/{version}/approve", approve_stage, methods=["POST"]),
    Route("/_/releases/{project}/{version}/approvals", approval_statements, methods=["GET"]),
    Route("/_/releases/{project}/{version}/reject", reject_stage, methods=["POST"]),
]
