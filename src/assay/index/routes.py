"""Read API routes: ``/simple/`` (PEP 503/691), ``/files/`` and the JSON API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from assay.index import cdn, filesend, jsonapi, mirrored
from assay.index.negotiate import Choice, NotAcceptable, negotiate
from assay.index.pages import ProjectHead, Rendered, index_key, project_head, project_key
from assay.index.paths import METADATA_SUFFIX, stored_key
from assay.index.serials import index_serial, project_serial
from assay.index.services import IndexServices as Services
from assay.index.services import index_services as services
from assay.indexes import IndexRef
from assay.storage.blobs import BlobKeyError, RangeNotSatisfiable, check_key
from assay.storage.models import File, Project
from assay.web.access import open_index_async
from assay.web.conditional import not_modified
from assay.web.ranges import requested_range
from assay.web.responses import JSONError, TextError
from assay.web.urls import index_url

#: Files never change once uploaded (a filename can never be reused).
IMMUTABLE = "max-age=31536000, immutable"


def _private(svc: Services, index: IndexRef) -> bool:
    return index.is_private(svc.settings.private)


def _cache(svc: Services, index: IndexRef, keys: str) -> dict[str, str]:
    return cdn.cache_headers(svc.settings, keys, private=_private(svc, index))


def _negotiated(request: Request) -> Choice | Response:
    try:
        # Parse the query string only when there is one (most requests have none).
        fmt = request.query_params.get("format") if request.scope.get("query_string") else None
        return negotiate(request.headers.get("accept"), fmt)
    except NotAcceptable as exc:
        return TextError(406, str(exc))


def _project_name(raw: str) -> NormalizedName | None:
    """The normalized name, or None when ``raw`` is not a valid project name (so no such
    project exists; a NUL or other junk never reaches the database, where PostgreSQL would
    refuse it with an error)."""
    try:
        return canonicalize_name(raw, validate=True)
    except InvalidName:
        return None


def _no_project(raw: str, headers: dict[str, str] | None = None) -> Response:
    return TextError(404, f"No project named {raw!r} on this index.", headers)


async def simple_index(request: Request) -> Response:
    svc = services(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    choice = _negotiated(request)
    if isinstance(choice, Response):
        return choice
    serial = await index_serial(svc.serials, index.id)
    if svc.mirrors.serves(index):
        # Issue 12: the upstreams' names too.
        return await mirrored.project_list(request, svc, index, choice, serial)
    rendered = svc.pages.cache.get(index_key(index.id, serial, choice.format))
    if rendered is None:

        def render() -> Rendered:
            with svc.db.read() as session:
                return svc.pages.render_index(session, index, choice.format)

        rendered = await run_in_threadpool(render)
    keys = cdn.listing_keys(index.name)
    return _page_response(request, svc, index, rendered.body, rendered.etag, choice.content_type, keys)


def _page_response(
    request: Request, svc: Services, index: IndexRef, body: bytes, etag: str, content_type: str, keys: str
) -> Response:
    headers = {
        "etag": etag,
        # PEP 691: the representation depends on Accept.
        "vary": "Accept, Accept-Encoding",
        # Revalidate every time (cheap with the ETag) unless a CDN may keep it for s-maxage,
        # purged by surrogate key on every change (assay.index.cdn): a new upload is visible at once.
        **_cache(svc, index, keys),
    }
    if not_modified(request.headers, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=content_type, headers=headers)


async def simple_project(request: Request) -> Response:
    """The hot path: one indexed lookup of the project's serial (on the event loop for SQLite),
    a cache hit, and the bytes. Only a miss loads and renders the page, in a thread."""
    svc = services(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    raw = request.path_params["project"]
    normalized = _project_name(raw)
    if normalized is None:
        return _no_project(raw)
    if raw != normalized or not request.scope["path"].endswith("/"):
        # PEP 503: redirect non-normalized names (and a missing slash) to the canonical URL.
        url = request.url.replace(path=f"{index.prefix}/simple/{normalized}/")
        return RedirectResponse(str(url), status_code=301)
    choice = _negotiated(request)
    if isinstance(choice, Response):
        return choice
    head = await project_serial(svc.serials, index.id, normalized)
    keys = cdn.project_keys(normalized, index.name)
    base = index_url(svc, request, index)
    if head is None:
        if svc.mirrors.serves(index):
            # Issue 12: not hosted here (a hosted or reserved name shadows every upstream).
            return await mirrored.project_page(request, svc, index, normalized, choice, base)
        # Keyed too: a CDN that keeps this 404 drops it when the project is created.
        return _no_project(normalized, _cache(svc, index, keys))
    rendered = svc.pages.cache.get(project_key(head[0], head[1], choice.format, base))
    if rendered is None:

        def render() -> Rendered | None:
            with svc.db.read() as session:
                return svc.pages.render_project(session, index, normalized, choice.format, base)

        rendered = await run_in_threadpool(render)
        if rendered is None:  # removed between the two reads
            return _no_project(normalized)
    return _page_response(request, svc, index, rendered.body, rendered.etag, choice.content_type, keys)


async def simple_redirect(request: Request) -> Response:
    prefix = f"/{request.path_params['index']}" if "index" in request.path_params else ""
    return RedirectResponse(str(request.url.replace(path=f"{prefix}/simple/")), status_code=301)


async def serve_file(request: Request) -> Response:
    """Issue 17, item 1: a file known to this process (``filesend.FileCache``) is answered on
    the event loop after one serial lookup (its project may have been quarantined or the file
    removed since); only the first request for a file reads its row, in a thread."""
    svc = services(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    try:
        check_key(request.path_params["key"])  # no "..", no absolute path, no control characters
    except BlobKeyError:
        return TextError(404, "No such file.")
    key = stored_key(index, request.path_params["key"])
    scope = cdn.cache_scope(svc.settings, index)
    cache: filesend.FileCache = svc.files
    cache_key = (index.id, key, scope)
    entry = cache.get(cache_key)
    if entry is not None and await project_serial(svc.serials, index.id, entry.project) != (
        entry.project_id,
        entry.serial,
    ):
        entry = None
    if entry is None:
        entry = await run_in_threadpool(_file_entry, svc, index, key)
        if entry is None:
            return TextError(404, "No such file.")
        cache.put(cache_key, entry)
    # PEP 792: a quarantined project's files are not offered for download.
    if entry.quarantined:
        return TextError(404, "No such file.")
    if not_modified(request.headers, entry.etag):
        return Response(status_code=304, headers={"etag": entry.etag, "cache-control": f"{scope}, {IMMUTABLE}"})
    accel = svc.settings.accel_redirect_prefix
    if accel and entry.path is not None:
        # nginx serves the bytes (and Range, HEAD) from its internal location; it keeps
        # Content-Type, Content-Disposition and Cache-Control of this response.
        return Response(headers=filesend.accel_headers(entry, f"{scope}, {IMMUTABLE}", accel + quote(key)))
    byte_range = requested_range(request.headers, entry.etag)
    if entry.path is not None:
        if entry.headers is None:
            try:
                entry.size = entry.path.stat().st_size
            except FileNotFoundError:
                return _missing()
            entry.headers = filesend.whole_headers(entry, f"{scope}, {IMMUTABLE}")
        try:
            return filesend.file_response(entry, request.method, byte_range, cache)
        except FileNotFoundError:
            entry.headers = None
            return _missing()
    return _from_store(request, svc, entry, key, scope, byte_range)


def _missing() -> Response:
    return TextError(500, "The file is registered but its content is missing; run `assay admin fsck`.")


def _file_entry(svc: Services, index: IndexRef, key: str) -> filesend.FileEntry | None:
    """The file's row and its project's serial, read in one transaction."""
    is_metadata = key.endswith(METADATA_SUFFIX)
    column = File.metadata_blob_key if is_metadata else File.blob_key
    with svc.db.read() as session:
        row = session.execute(
            sa.select(
                File.sha256,
                File.metadata_sha256,
                File.filename,
                Project.status,
                Project.id,
                Project.normalized_name,
                Project.serial,
            )
            .join(Project, File.project_id == Project.id)
            .where(column == key, File.index_id == index.id)
        ).one_or_none()
    if row is None:
        return None
    return filesend.FileEntry(
        project_id=row.id,
        project=row.normalized_name,
        serial=row.serial,
        quarantined=row.status == "quarantined",
        etag=f'"{row.metadata_sha256 if is_metadata else row.sha256}"',
        media_type="text/plain; charset=utf-8" if is_metadata else "application/octet-stream",
        filename=None if is_metadata else row.filename,
        served_name=row.filename + (METADATA_SUFFIX if is_metadata else ""),
        path=filesend.local_path(svc.blobs, key),
    )


def _from_store(
    request: Request,
    svc: Services,
    entry: filesend.FileEntry,
    key: str,
    scope: str,
    byte_range: tuple[int | None, int | None] | None,
) -> Response:
    """Any store but the local directory: its own redirect or stream (issue 16)."""
    headers = {"etag": entry.etag, "cache-control": f"{scope}, {IMMUTABLE}"}
    if entry.filename is not None:
        headers["content-disposition"] = f'attachment; filename="{entry.filename}"'
    media_type = entry.media_type
    # Issue 16: an object store may answer the download itself (a presigned URL, setting
    # blob_redirect_seconds); the redirect is issued only after the read-access check above.
    url = svc.blobs.download_url(key, filename=entry.served_name, media_type=media_type)
    if url is not None:
        # Not cached as the file is: the URL expires. pip, uv and twine follow redirects.
        return RedirectResponse(url, status_code=302, headers={"cache-control": "private, no-store"})
    headers["accept-ranges"] = "bytes"
    try:
        opened = svc.blobs.open(key, byte_range)
    except FileNotFoundError:
        return _missing()
    except RangeNotSatisfiable as exc:
        return Response(status_code=416, headers={**headers, "content-range": f"bytes */{exc.total}"})
    headers["content-length"] = str(opened.size)
    status = 200
    if byte_range is not None:
        status = 206
        end = opened.offset + opened.size - 1
        headers["content-range"] = f"bytes {opened.offset}-{end}/{opened.total}"
    if request.method == "HEAD":
        opened.reader.close()
        return Response(status_code=status, headers=headers, media_type=media_type)
    # Streamed in chunks from whichever store (a file, an S3 GET): never read whole into memory.
    return StreamingResponse(opened.chunks(), status_code=status, headers=headers, media_type=media_type)


async def json_project(request: Request) -> Response:
    svc = services(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    normalized = _project_name(request.path_params["project"])
    if normalized is None:
        return JSONError(404, "Not Found")
    base = index_url(svc, request, index)

    def load() -> tuple[ProjectHead | None, dict[str, Any] | None]:
        with svc.db.read() as session:
            head = project_head(session, index, normalized)
            return head, jsonapi.project_json(session, index, head, base) if head else None

    head, doc = await run_in_threadpool(load)
    if head is None and svc.mirrors.serves(index):
        # Issue 12: a project the index does not host (hosted and reserved names shadow upstream).
        return await mirrored.json_api(svc, index, normalized, base, None)
    if doc is None:
        return JSONError(404, "Not Found")
    return JSONResponse(doc, headers=_cache(svc, index, cdn.project_keys(normalized, index.name)))


async def json_release(request: Request) -> Response:
    svc = services(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    normalized = _project_name(request.path_params["project"])
    if normalized is None:
        return JSONError(404, "Not Found")
    base = index_url(svc, request, index)
    version = request.path_params["version"]

    def load() -> tuple[ProjectHead | None, dict[str, Any] | None]:
        with svc.db.read() as session:
            head = project_head(session, index, normalized)
            return head, jsonapi.release_json(session, index, head, version, base) if head else None

    head, doc = await run_in_threadpool(load)
    if head is None and svc.mirrors.serves(index):
        return await mirrored.json_api(svc, index, normalized, base, version)
    if doc is None:
        return JSONError(404, "Not Found")
    return JSONResponse(doc, headers=_cache(svc, index, cdn.project_keys(normalized, index.name)))


routes = [
    Route("/simple", simple_redirect, methods=["GET", "HEAD"]),
    Route("/simple/", simple_index, methods=["GET", "HEAD"]),
    Route("/simple/{project}", simple_project, methods=["GET", "HEAD"]),
    Route("/simple/{project}/", simple_project, methods=["GET", "HEAD"]),
    Route("/files/{key:path}", serve_file, methods=["GET", "HEAD"]),
    Route("/pypi/{project}/json", json_project, methods=["GET", "HEAD"]),
    Route("/pypi/{project}/{version}/json", json_release, methods=["GET", "HEAD"]),
]
