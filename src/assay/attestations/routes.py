"""PEP 740 Integrity API: ``GET /integrity/<project>/<version>/<filename>/provenance``.

As PyPI serves it: media type ``application/vnd.pypi.integrity.v1+json`` (also given for
``application/json`` and when no Accept is sent), 404 with a message when the file has no
provenance, 406 for an Accept it cannot satisfy. Provenance may grow after upload (PEP 740), so
it is revalidated rather than cached forever: a strong ETag makes that cheap.
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from packaging.utils import InvalidName, canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from assay.index.routes import check_read_access
from assay.index.services import index_services
from assay.storage.models import File, Project, Release
from assay.web.responses import JSONError

INTEGRITY_JSON = "application/vnd.pypi.integrity.v1+json"
_ACCEPTABLE = {INTEGRITY_JSON, "application/json", "application/*", "*/*"}


def _acceptable(accept: str | None) -> bool:
    if not accept or not accept.strip():
        return True
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = next((p.split("=", 1)[1] for p in params if p.startswith("q=")), "1")
        try:
            weight = float(q)
        except ValueError:
            weight = 0.0
        if media.lower() in _ACCEPTABLE and weight > 0:
            return True
    return False


def provenance(request: Request) -> Response:
    svc = index_services(request)
    if (denied := check_read_access(request, svc)) is not None:
        return denied
    if not _acceptable(request.headers.get("accept")):
        return JSONError(406, f"Not Acceptable: this endpoint serves {INTEGRITY_JSON}")
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
        row = session.execute(
            sa.select(File.provenance, Project.status)
            .join(Release, File.release_id == Release.id)
            .join(Project, File.project_id == Project.id)
            .where(
                File.filename == filename,
                Project.normalized_name == project,
                Release.canonical_version == version,
            )
        ).one_or_none()
    # PEP 792: nothing of a quarantined project is offered.
    if row is None or row.provenance is None or row.status == "quarantined":
        return JSONError(404, f"No provenance available for {filename}")
    body = json.dumps(row.provenance, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"etag": etag, "vary": "Accept", "cache-control": "public, no-cache"}
    if svc.settings.private:
        headers["cache-control"] = "private, no-cache"
    inm = request.headers.get("if-none-match")
    if inm and any(t.strip() in (etag, "*") for t in inm.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=INTEGRITY_JSON, headers=headers)


routes = [
    Route("/integrity/{project}/{version}/{filename}/provenance", provenance, methods=["GET", "HEAD"]),
]
