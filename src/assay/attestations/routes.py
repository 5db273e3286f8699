"""PEP 740 Integrity API: ``GET /integrity/<project>/<version>/<filename>/provenance``.

As PyPI serves it: media type ``application/vnd.pypi.integrity.v1+json`` (also given for
``application/json`` and when no Accept is sent), 404 with a message when the file has no
provenance, 406 for an Accept it cannot satisfy. Provenance may grow after upload (PEP 740), so
it is revalidated rather than cached forever: a strong ETag makes that cheap.
"""

from __future__ import annotations

import hashlib
import json

from packaging.utils import InvalidName, canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from assay import mediatypes as mt
from assay.index import cdn
from assay.index.mirrors import MirrorRefusal
from assay.index.receipts import receipt_link
from assay.index.services import index_services
from assay.storage import releases
from assay.storage.models import File
from assay.web.access import open_index, request_index
from assay.web.conditional import not_modified
from assay.web.negotiation import Offer, Offers, negotiate
from assay.web.responses import JSONError
from assay.web.urls import index_url

#: PyPI answers application/json (and no Accept) with the PEP 740 type too.
_OFFERS = Offers([Offer(mt.INTEGRITY_JSON_V1, frozenset({mt.INTEGRITY_JSON_V1, mt.JSON}))])


def provenance(request: Request) -> Response:
    svc = index_services(request)
    index = open_index(request, svc)
    if isinstance(index, Response):
        return index
    if negotiate(request.headers.get("accept"), _OFFERS) is None:
        return JSONError(406, f"Not Acceptable: this endpoint serves {mt.INTEGRITY_JSON_V1}")
    filename = request.path_params["filename"]
    try:
        project = canonicalize_name(request.path_params["project"], validate=True)
        version = canonicalize_version(Version(request.path_params["version"]))
    except (InvalidName, InvalidVersion):
        return JSONError(404, f"No provenance available for {filename}")
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        # No stored filename has control characters (uploads refuse them), and PostgreSQL
        # refuses a NUL in a query parameter outright: that was a 500 (tests/reliability).
        return JSONError(404, f"No provenance available for {filename!r}")
    with svc.db.read() as session:
        row = releases.live_file(session, index.id, project, version, filename, File.provenance, File.sha256)
    if row is None or row.provenance is None:
        return JSONError(404, f"No provenance available for {filename}")
    body = json.dumps(row.provenance, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    # Issue 16: cached by a CDN for s-maxage, purged with the project (assay.index.cdn).
    keys = cdn.project_keys(project, index.name)
    private = index.is_private(svc.settings.private)
    headers = {"etag": etag, "vary": "Accept", **cdn.cache_headers(svc.settings, keys, private=private)}
    # Issue 13: the file's log receipt, beside (not inside) the PEP 740 provenance object.
    base = index_url(svc, request, index)
    links = [receipt_link(base, row.sha256, filename)]
    if filename.endswith(".whl"):
        # Issue 14, item 4: rebuilders' reports come after the upload, whose log entry holds
        # this object's digest, so they are served beside it (RFC 8288), never added into it.
        raw_version = request.path_params["version"]
        links.append(f'<{base}/integrity/{project}/{raw_version}/{filename}/rebuilds>; rel="{REBUILDS_REL}"')
    headers["link"] = ", ".join(links)
    if not_modified(request.headers, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=mt.INTEGRITY_JSON_V1, headers=headers)


#: The Link relation of a wheel's rebuild reports (an extension relation type, RFC 8288 2.1.2,
#: named like the receipt's ``assay-log-receipt``).
REBUILDS_REL = "assay-rebuilds"


async def provenance_route(request: Request) -> Response:
    """The hosted file's provenance; for a project an index does not host but mirrors (issue
    12), the upstream's provenance object, re-served unchanged (a hosted name shadows it)."""
    response = await run_in_threadpool(provenance, request)
    if response.status_code != 404:
        return response
    svc = index_services(request)
    index = request_index(request, svc)
    if isinstance(index, Response) or not svc.mirrors.serves(index):
        return response
    try:
        project = canonicalize_name(request.path_params["project"], validate=True)
    except InvalidName:
        return response
    if await run_in_threadpool(svc.serials.project, index.id, project) is not None:
        return response  # hosted here: never from upstream
    got = await svc.mirrors.provenance(index, request.path_params["filename"])
    if isinstance(got, MirrorRefusal):
        return JSONError(got.status, got.reason)
    etag = '"' + hashlib.sha256(got).hexdigest()[:32] + '"'
    private = index.is_private(svc.settings.private)
    headers = {"etag": etag, "vary": "Accept", "cache-control": f"{'private' if private else 'public'}, no-cache"}
    if not_modified(request.headers, etag):
        return Response(status_code=304, headers=headers)
    return Response(got, media_type=mt.INTEGRITY_JSON_V1, headers=headers)


routes = [
    Route("/integrity/{project}/{version}/{filename}/provenance", provenance_route, methods=["GET", "HEAD"]),
]
