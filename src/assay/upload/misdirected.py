"""Uploads sent to the index's root or simple URL instead of the upload URL.

``twine upload --repository-url https://host/simple/`` is a common slip (the simple URL is the
one people have at hand). Starlette would answer a bare "405 Method Not Allowed"; this answers
405 with the ``Allow`` header RFC 9110 requires and a message naming ``/legacy/``, in the body
(what uv prints) and the reason phrase (what twine prints). The body is never read: uvicorn
discards it, and ``assay.web.security`` exempts these POSTs from the general body limit so a
large upload gets this answer and not a 413.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from assay.upload.interfaces import upload_services
from assay.web.responses import TextError
from assay.web.security import MISDIRECTED_UPLOAD_PATHS


async def misdirected_upload(request: Request) -> Response:
    base = upload_services(request).base_url(request)
    return TextError(
        405,
        f"Method Not Allowed: {request.url.path} only serves downloads; uploads go to {base}/legacy/ "
        "(give that as the repository or publish URL).",
        headers={"allow": "GET, HEAD"},
    )


#: POST only: these paths' GET and HEAD routes are the index's own (a POST matches here first
#: with a full match, before Starlette's method check would answer its plain 405).
routes = [Route(path, misdirected_upload, methods=["POST"]) for path in sorted(MISDIRECTED_UPLOAD_PATHS)]
