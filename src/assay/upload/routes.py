"""``POST /legacy/``: PyPI's upload API, as twine and ``uv publish`` speak it."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from assay.accounts.auth import AuthError, AuthRefusal, Principal, authenticate
from assay.index.receipts import receipt_headers
from assay.upload import misdirected
from assay.upload.dists import ArchiveLimits
from assay.upload.form import FormError, FormLimits, read_upload_form
from assay.upload.interfaces import upload_services
from assay.upload.service import PreparedUpload, UploadContext, UploadRefusal, UploadRejected, prepare
from assay.web import refusals
from assay.web.access import auth_error, request_index
from assay.web.responses import TextError
from assay.web.urls import index_url

log = logging.getLogger(__name__)

#: Room for the form's text fields (description, attestations) beyond the file itself.
FIELDS_ALLOWANCE = 20 * 1024 * 1024


async def legacy_upload(request: Request) -> Response:
    svc = upload_services(request)
    settings = svc.settings
    index = request_index(request, svc)
    if isinstance(index, Response):
        return index
    if index.is_mirror:
        # Issue 12: what a mirror serves comes from its upstream, through its policy, only.
        return TextError(403, f"Index {index.name!r} is a mirror of {index.mirror_url}: it takes no uploads.")
    remote = request.client.host if request.client else None
    authorization = request.headers.get("authorization")
    who: Principal | None = None
    prepared: PreparedUpload | None = None

    async def refuse(
        status: int, message: str, reason: AuthRefusal | UploadRefusal, response: Response | None = None
    ) -> Response:
        """Issue 10, item 14: a refusal is logged (and audited when it matters) before it is
        answered; nothing of the upload itself is stored."""
        attempt = refusals.upload_attempt(who, authorization, settings.token_prefix, remote)
        project = prepared.normalized if prepared is not None else None
        await refusals.upload_refused(svc.db, attempt, status, reason, message, project)
        return response or TextError(status, message)

    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > settings.max_upload_size + FIELDS_ALLOWANCE
        except ValueError:
            return await refuse(400, "Invalid Content-Length header.", "invalid")
        if too_big:
            # Refuse before reading a byte of it.
            return await refuse(
                413,
                f"File too large. The limit is {settings.max_upload_size} bytes "
                f"({settings.max_upload_size / 1024 / 1024:.0f} MiB).",
                "too-large",
            )

    # Authenticate before reading the body: a bad token should not cost a 100 MiB transfer.
    def _auth() -> Principal:
        with svc.db.read() as session:
            return authenticate(session, authorization, settings.token_prefix, index.id, index.name)

    try:
        who = await run_in_threadpool(_auth)
    except AuthError as exc:
        return await refuse(exc.status, str(exc), exc.code, auth_error(exc))

    staged = svc.blobs.stage()
    try:
        form = await read_upload_form(
            request.headers.get("content-type"),
            request.stream(),
            staged,
            FormLimits(max_content=settings.max_upload_size),
        )
        prepared = await run_in_threadpool(
            prepare, form, svc.blobs, ArchiveLimits(max_metadata=settings.max_metadata_size)
        )
        # PEP 740: the attestations verify (or the upload is refused) before anything is stored.
        prepared.provenance = await run_in_threadpool(svc.attestations.check, prepared, form, who)
        result = await run_in_threadpool(svc.uploader.commit, prepared, UploadContext(who, remote, index))
    except (FormError, UploadRejected) as exc:
        return await refuse(exc.status, str(exc), exc.code)
    except ClientDisconnect:
        log.info("client disconnected during an upload; nothing was stored")
        return TextError(400, "The client disconnected before the upload finished.")
    finally:
        staged.discard()
        if prepared is not None and prepared.metadata is not None:
            prepared.metadata.discard()
    log.info(
        "upload %s %s by %s (%s)",
        "accepted" if result.created else "already present",
        result.filename,
        who.actor,
        result.sha256,
    )
    if result.stage_id is not None:
        # Issue 14: staged, not live: no log entry yet (it is appended at approval).
        preview = index_url(svc, request, index) + f"/stage/{result.stage_id}/simple/"
        return PlainTextResponse(
            f"OK (staged: {result.filename} awaits approval; preview index {preview})\n",
            headers={"assay-stage-preview": preview},
        )
    # Issue 13: where the file's log receipt is, and (for a new file) its entry's index.
    headers = receipt_headers(index_url(svc, request, index), result.sha256, result.filename, result.log_index)
    return PlainTextResponse("OK\n" if result.created else "OK (identical file already present)\n", headers=headers)


routes = [
    Route("/legacy/", legacy_upload, methods=["POST"]),
    Route("/legacy", legacy_upload, methods=["POST"]),
    *misdirected.routes,
]
