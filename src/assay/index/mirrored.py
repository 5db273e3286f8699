"""The read routes' mirrored half (issue 12): pages and files an index serves from upstream.

``routes.simple_project`` comes here for a project the index does not host; ``/files/mirror/``
is the route of mirrored files. What a mirror shows is decided again on every request (the
policy may have changed, a cooldown may have passed), so nothing here is cached as immutable.
"""

from __future__ import annotations

import hashlib
import logging
from weakref import WeakKeyDictionary

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from assay.index import cdn, filesend, html, json, jsonapi
from assay.index.mirrors import MIRROR_FILES, MirroredPage, MirrorRefusal
from assay.index.model import ProjectList
from assay.index.negotiate import Choice, Format
from assay.index.pages import load_project_list
from assay.index.paths import METADATA_SUFFIX
from assay.index.services import IndexServices, index_services
from assay.indexes import IndexRef
from assay.storage.blobs import BlobKeyError, check_key
from assay.web.access import open_index_async
from assay.web.conditional import not_modified
from assay.web.ranges import requested_range
from assay.web.responses import JSONError, TextError

log = logging.getLogger(__name__)


def _warning(warnings: tuple[str, ...]) -> dict[str, str]:
    """RFC 9111's ``Warning`` is obsolete, but its shape is what tools and people recognise for
    "stale": code 110 (Response is Stale), the agent, the text (quotes and controls removed)."""
    if not warnings:
        return {}
    text = "; ".join(warnings).replace('"', "'")
    text = "".join(c for c in text if c.isprintable())[:500]
    return {"warning": f'110 assay "{text}"'}


#: A mirrored page's bytes and ETag per format, for as long as the page object lives (the port
#: reuses one while nothing it was decided from changed: assay.app.mirrors.EngineMirrors.page).
_rendered: WeakKeyDictionary[MirroredPage, dict[Format, tuple[bytes, str]]] = WeakKeyDictionary()


def _render(got: MirroredPage, fmt: Format) -> tuple[bytes, str]:
    forms = _rendered.setdefault(got, {})
    done = forms.get(fmt)
    if done is None:
        text = json.render_project_page(got.page) if fmt is Format.JSON else html.render_project_page(got.page)
        body = text.encode()
        done = forms[fmt] = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return done


async def project_page(
    request: Request, svc: IndexServices, index: IndexRef, name: str, choice: Choice, base: str
) -> Response:
    got = await svc.mirrors.page(index, name, base)
    if got is None:
        return TextError(404, f"No project named {name!r} on this index or its upstreams.")
    if isinstance(got, MirrorRefusal):
        # Upstream unreachable and nothing kept: an error, never an error page posing as a page.
        return TextError(got.status, got.reason)
    if got.warnings:
        log.warning("mirror: serving the kept page of %s: %s", name, "; ".join(got.warnings))
    body, etag = _render(got, choice.format)
    return _negotiated_answer(request, svc, index, choice, body, etag, got.warnings)


def _negotiated_answer(
    request: Request,
    svc: IndexServices,
    index: IndexRef,
    choice: Choice,
    body: bytes,
    etag: str,
    warnings: tuple[str, ...],
) -> Response:
    """A mirrored page or project list: revalidated each time (upstream may change it), with
    the ``Warning`` of a kept copy served while upstream is unreachable."""
    headers = {
        "etag": etag,
        "vary": "Accept, Accept-Encoding",
        "cache-control": f"{cdn.cache_scope(svc.settings, index)}, no-cache",
        **_warning(warnings),
    }
    if not_modified(request.headers, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=choice.content_type, headers=headers)


#: The last rendered ``/simple/`` of each (index, format) that has upstreams, with what it was
#: rendered from: (index serial, the upstream lists' key). One per index and format: a list
#: of the public index's names is tens of MiB, so older ones are not kept.
_lists: dict[tuple[int, Format], tuple[tuple[object, ...], bytes, str]] = {}


async def project_list(request: Request, svc: IndexServices, index: IndexRef, choice: Choice, serial: int) -> Response:
    """``/simple/`` of an index with upstreams: its own projects (hosted and reserved names) and
    every upstream's, minus what the policy's allow / deny lists keep out; a local name
    shadows an upstream's (one entry, the local spelling)."""
    names = await svc.mirrors.names(index)
    if names.warnings:
        log.warning("mirror: serving the kept project list of %s: %s", index.name, "; ".join(names.warnings))
    key = (serial, names.key)
    done = _lists.get((index.id, choice.format))
    if done is None or done[0] != key:

        def render() -> tuple[bytes, str]:
            with svc.db.read() as session:
                local = load_project_list(session, index, serial)
            mine = {p.normalized_name for p in local.projects}
            merged = sorted(
                (*local.projects, *(p for p in names.projects if p.normalized_name not in mine)),
                key=lambda p: p.normalized_name,
            )
            listing = ProjectList(tuple(merged), serial)
            text = (
                json.render_project_list(listing) if choice.format is Format.JSON else html.render_project_list(listing)
            )
            body = text.encode()
            return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

        body, etag = await run_in_threadpool(render)
        done = _lists[(index.id, choice.format)] = (key, body, etag)
    _, body, etag = done
    return _negotiated_answer(request, svc, index, choice, body, etag, names.warnings)


async def json_api(svc: IndexServices, index: IndexRef, name: str, base: str, version: str | None) -> Response:
    """PyPI's JSON API (``/pypi/<p>/json``, ``/pypi/<p>/<v>/json``) of a mirrored project, from
    the same decided page as its simple page: the policy's hidden files are absent, every URL
    is assay's."""
    got = await svc.mirrors.page(index, name, base)
    if isinstance(got, MirrorRefusal):
        return JSONError(got.status, got.reason)
    doc = None
    if got is not None:
        if version is None:
            doc = jsonapi.mirrored_project_json(got.page, base)
        else:
            doc = jsonapi.mirrored_release_json(got.page, version, base)
    if doc is None:
        return JSONError(404, "Not Found")
    scope = cdn.cache_scope(svc.settings, index)
    headers = {"cache-control": f"{scope}, no-cache", **_warning(got.warnings if got else ())}
    return JSONResponse(doc, headers=headers)


async def mirrored_file(request: Request) -> Response:
    """``/files/mirror/<key>``: fetched from upstream and checked against its sha256 on the
    first download (nothing is served before the check), from the blob store afterwards."""
    svc = index_services(request)
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    key = MIRROR_FILES + request.path_params["key"]
    try:
        check_key(key)
    except BlobKeyError:
        return TextError(404, "No such file.")
    got = await svc.mirrors.open_file(index, key)
    if isinstance(got, MirrorRefusal):
        return TextError(got.status, got.reason)
    is_metadata = key.endswith(METADATA_SUFFIX)
    etag = f'"{got.sha256}"'
    scope = cdn.cache_scope(svc.settings, index)
    cache_control = f"{scope}, no-cache"
    if not_modified(request.headers, etag):
        return Response(
            status_code=304, headers={"etag": etag, "cache-control": cache_control, **_warning(got.warnings)}
        )
    media_type = "text/plain; charset=utf-8" if is_metadata else "application/octet-stream"
    path = filesend.local_path(svc.blobs, got.blob_key)
    if path is not None and not got.warnings:
        # Issue 17's file path for a kept blob on the filesystem store: its headers (and, when
        # small, its bytes) built once, sent from the event loop. The policy was asked above.
        cache_key = (index.id, got.blob_key, scope)
        entry = svc.files.get(cache_key)
        if entry is None or entry.etag != etag:
            entry = filesend.FileEntry(
                project_id=0,
                project="",
                serial=0,
                quarantined=False,
                etag=etag,
                media_type=media_type,
                filename=None if is_metadata else got.filename,
                served_name=got.filename + (METADATA_SUFFIX if is_metadata else ""),
                path=path,
            )
            try:
                entry.size = path.stat().st_size
            except FileNotFoundError:
                return _missing()
            entry.headers = filesend.whole_headers(entry, cache_control)
            svc.files.put(cache_key, entry)
        try:
            return filesend.file_response(entry, request.method, requested_range(request.headers, etag), svc.files)
        except FileNotFoundError:
            return _missing()
    headers = {"etag": etag, "cache-control": cache_control, **_warning(got.warnings)}
    if not is_metadata:
        headers["content-disposition"] = f'attachment; filename="{got.filename}"'
    try:
        opened = await run_in_threadpool(svc.blobs.open, got.blob_key)
    except FileNotFoundError:
        return _missing()
    headers["content-length"] = str(opened.size)
    if request.method == "HEAD":
        opened.reader.close()
        return Response(headers=headers, media_type=media_type)
    return StreamingResponse(opened.chunks(), headers=headers, media_type=media_type)


def _missing() -> Response:
    return TextError(500, "The mirrored file is registered but its content is missing; run `assay admin fsck`.")


#: Before ``/files/{key:path}``: a mirrored file has no ``File`` row.
routes = [Route("/files/mirror/{key:path}", mirrored_file, methods=["GET", "HEAD"])]
