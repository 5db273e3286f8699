"""``/stage/<id>/simple/``: a stage's preview index (issue 14; PEP 694's preview URL).

The whole index as it would be once the stage is approved: the project list and every other
project as they are live, and the stage's project with its live files plus the stage's. It
reuses the index's read path (``index.pages`` loads the live page model, ``index.html`` and
``index.json`` serialise it, ``index.negotiate`` picks the format, PEP 691 / 503); the stage's
files are appended to the model here. Pages are not cached: previews are few and short-lived.

The stage id is the capability (192 random bits). On a private index the usual read token is
needed too. Files: ``/stage/<id>/files/<key>`` serves the stage's own blobs and redirects to
``/files/<key>`` for the live ones (so every link of a page, relative as the live pages'
are, resolves under the preview).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import sqlalchemy as sa
from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from assay.index import html, json
from assay.index.model import FileLink, ProjectPage
from assay.index.negotiate import Format, NotAcceptable, negotiate
from assay.index.pages import load_project_list, load_project_page, project_head, project_list_serial
from assay.index.paths import METADATA_SUFFIX, file_path, public_key, stored_key
from assay.indexes import IndexRef
from assay.stages import store
from assay.stages.services import StageServices, stage_services
from assay.storage.blobs import BlobKeyError, check_key
from assay.storage.models import File, Project, Stage, StagedFile
from assay.web.access import open_index
from assay.web.responses import TextError
from assay.web.urls import index_url

#: Never stored by a shared cache, revalidated each time: a stage changes until approved.
NO_STORE = "private, no-store"


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:  # pragma: no cover - uploads are validated
        return (0, version)


def _stage(request: Request, svc: StageServices) -> tuple[IndexRef, Stage] | Response:
    index = open_index(request, svc)
    if isinstance(index, Response):
        return index
    with svc.db.read() as session:
        stage = store.stage_by_id(session, request.path_params["stage"])
    if stage is None or stage.index_id != index.id:
        # Approved, rejected, expired or never there: one answer for all.
        return TextError(404, "No such stage (it may have been approved, rejected or expired).")
    return index, stage


def _format(request: Request) -> tuple[Format, str] | Response:
    try:
        choice = negotiate(request.headers.get("accept"), request.query_params.get("format"))
    except NotAcceptable as exc:
        return TextError(406, str(exc))
    return choice.format, choice.content_type


def preview_page(session: Session, index: IndexRef, stage: Stage, normalized: str, base: str) -> ProjectPage | None:
    """The page of ``normalized`` as approving ``stage`` would make it."""
    head = project_head(session, index, normalized)
    if head is None:
        return None
    page = load_project_page(session, index, head, base)
    if head.id != stage.project_id or head.status == "quarantined":
        return page
    staged = [
        FileLink(
            filename=f.filename,
            url="../.." + file_path(public_key(index, f.blob_key)),
            sha256=f.sha256,
            size=f.size,
            upload_time=f.upload_time,
            requires_python=f.requires_python,
            yanked=False,
            core_metadata_sha256=f.metadata_sha256,
            # The Integrity API serves live files only; the provenance is checked at upload
            # and goes live with the file.
            provenance_url=None,
        )
        for f in store.staged_files(session, stage.id)
    ]
    versions = set(page.versions) | {stage.version}
    files = sorted([*page.files, *staged], key=lambda link: link.filename)
    return dataclasses.replace(
        page, files=tuple(files), versions=tuple(sorted(versions, key=_version_key)), serial=page.serial
    )


def _respond(request: Request, text: str, content_type: str) -> Response:
    headers = {"cache-control": NO_STORE, "vary": "Accept, Accept-Encoding"}
    return Response(text.encode(), media_type=content_type, headers=headers)


def stage_index(request: Request) -> Response:
    svc = stage_services(request)
    found = _stage(request, svc)
    if isinstance(found, Response):
        return found
    index, _ = found
    fmt = _format(request)
    if isinstance(fmt, Response):
        return fmt
    with svc.db.read() as session:
        listing = load_project_list(session, index, project_list_serial(session, index))
    text = json.render_project_list(listing) if fmt[0] is Format.JSON else html.render_project_list(listing)
    return _respond(request, text, fmt[1])


def stage_project(request: Request) -> Response:
    svc = stage_services(request)
    found = _stage(request, svc)
    if isinstance(found, Response):
        return found
    index, stage = found
    raw = request.path_params["project"]
    try:
        normalized = canonicalize_name(raw, validate=True)
    except InvalidName:
        return TextError(404, f"No project named {raw!r} on this index.")
    if raw != normalized or not request.url.path.endswith("/"):
        # PEP 503: the canonical URL, as on the live pages.
        return RedirectResponse(str(request.url.replace(path=f"{_prefix(request)}/simple/{normalized}/")), 301)
    fmt = _format(request)
    if isinstance(fmt, Response):
        return fmt
    base = index_url(svc, request, index)
    with svc.db.read() as session:
        page = preview_page(session, index, stage, normalized, base)
    if page is None:
        return TextError(404, f"No project named {raw!r} on this index.")
    text = json.render_project_page(page) if fmt[0] is Format.JSON else html.render_project_page(page)
    return _respond(request, text, fmt[1])


def _prefix(request: Request) -> str:
    """The preview's own path, ``[/<index>]/stage/<id>``."""
    index = request.path_params.get("index")
    return (f"/{index}" if index else "") + f"/stage/{request.path_params['stage']}"


async def stage_file(request: Request) -> Response:
    svc = stage_services(request)
    found = await run_in_threadpool(_stage, request, svc)
    if isinstance(found, Response):
        return found
    index, stage = found
    public = request.path_params["key"]
    try:
        check_key(public)
    except BlobKeyError:
        return TextError(404, "No such file.")
    key = stored_key(index, public)
    is_metadata = key.endswith(METADATA_SUFFIX)

    def lookup() -> tuple[str, str | None] | Literal["live"] | None:
        """The staged file's (filename, digest), "live" for a live file of the index, or None."""
        with svc.db.read() as session:
            column = StagedFile.metadata_blob_key if is_metadata else StagedFile.blob_key
            row = session.execute(
                sa.select(StagedFile.filename, StagedFile.sha256, StagedFile.metadata_sha256).where(
                    column == key, StagedFile.stage_id == stage.id
                )
            ).one_or_none()
            if row is not None:
                return row.filename, (row.metadata_sha256 if is_metadata else row.sha256)
            live_column = File.metadata_blob_key if is_metadata else File.blob_key
            live = session.execute(
                sa.select(File.id)
                .join(Project, Project.id == File.project_id)
                .where(live_column == key, File.index_id == index.id, Project.status != "quarantined")
            ).first()
            return "live" if live is not None else None

    found_file = await run_in_threadpool(lookup)
    if found_file == "live":
        # A live file: the index serves it (with its caching, ranges and redirects).
        return RedirectResponse(index_url(svc, request, index) + file_path(public), 307)
    if not isinstance(found_file, tuple):
        return TextError(404, "No such file.")
    filename, digest = found_file
    headers = {"etag": f'"{digest}"', "cache-control": NO_STORE}
    if is_metadata:
        media_type = "text/plain; charset=utf-8"
    else:
        media_type = "application/octet-stream"
        headers["content-disposition"] = f'attachment; filename="{filename}"'
    try:
        opened = await run_in_threadpool(svc.blobs.open, key, None)
    except FileNotFoundError:
        return TextError(500, "The staged file's content is missing; run `assay admin fsck`.")
    headers["content-length"] = str(opened.size)
    if request.method == "HEAD":
        opened.reader.close()
        return Response(headers=headers, media_type=media_type)
    return StreamingResponse(opened.chunks(), headers=headers, media_type=media_type)


routes = [
    Route("/stage/{stage}/simple/", stage_index, methods=["GET", "HEAD"]),
    Route("/stage/{stage}/simple/{project}", stage_project, methods=["GET", "HEAD"]),
    Route("/stage/{stage}/simple/{project}/", stage_project, methods=["GET", "HEAD"]),
    Route("/stage/{stage}/files/{key:path}", stage_file, methods=["GET", "HEAD"]),
]
