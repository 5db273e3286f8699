"""Receipts: ``{file URL}.tlog-proof``, the C2SP tlog-proof that a file's ``upload`` entry is in
the index's transparency log (issue 13), and the links that point at it (the upload answer, the
Integrity API, the PEP 691 page's ``_assay_log_receipt``).

The route lives with the files it is named after (``/files/...``); the proof itself is the
log's (``assay.log.routes.LogService.receipt``).
"""

from __future__ import annotations

import asyncio
import math
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from assay.index.paths import FILES_PREFIX, blob_key, file_path, stored_key
from assay.log import proof
from assay.log.routes import NO_STORE, LogServices
from assay.web.access import open_index_async

#: How long a receipt request waits for a checkpoint covering its entry (the checkpoint
#: interval, at most this): the receipt of a file just uploaded is then one request away.
RECEIPT_WAIT = 5.0
RECEIPT_POLL = 0.2
#: The link relation naming a file's receipt. Not a registered relation type (RFC 8288 §2.1.1):
#: a private token that only assay's clients match, as the ``_assay_`` JSON keys are.
RECEIPT_REL = "assay-log-receipt"


async def receipt_route(request: Request) -> Response:
    """``GET /files/<key>.tlog-proof``. The receipt of a file uploaded a moment ago may wait
    for the next checkpoint: up to the checkpoint interval (at most RECEIPT_WAIT seconds),
    polling; past that 503 with Retry-After, the interval (RFC 9110 §10.2.3)."""
    from assay.web.responses import TextError

    svc: LogServices = request.app.state.services
    log = svc.log
    index = await open_index_async(request, svc)
    if isinstance(index, Response):
        return index
    found = await run_in_threadpool(log.upload_entry, index, stored_key(index, request.path_params["key"]))
    if found is None:
        return TextError(404, "No such file, or the log has no upload entry for it.",
                         headers={"Cache-Control": NO_STORE})
    seq, entry = found
    deadline = time.monotonic() + min(log.interval, RECEIPT_WAIT)
    while (body := await run_in_threadpool(log.receipt, index, seq, entry)) is None:
        if time.monotonic() >= deadline:
            return TextError(
                503, f"Log entry {seq} is not covered by a signed checkpoint yet; retry later.",
                headers={"Retry-After": str(max(1, math.ceil(log.interval))), "Cache-Control": NO_STORE},
            )
        await asyncio.sleep(RECEIPT_POLL)
    # Any later receipt proves the same entry against a newer checkpoint: revalidate. A private
    # index's answers are for one reader, never for a shared cache (as its other reads).
    cache = "private, no-cache" if index.is_private(svc.settings.private) else "no-cache"
    return Response(body, media_type="text/plain; charset=utf-8", headers={"Cache-Control": cache})


def receipt_path(file_url: str) -> str:
    """The receipt's URL for a file's URL (``{file URL}.tlog-proof``): derivable, no lookup."""
    return file_url + proof.SUFFIX


def receipt_link(base_url: str, sha256: str, filename: str) -> str:
    """``<{file URL}.tlog-proof>; rel="assay-log-receipt"``: an RFC 8288 Link header value."""
    url = base_url + receipt_path(file_path(blob_key(sha256, filename)))
    return f'<{url}>; rel="{RECEIPT_REL}"'


def receipt_headers(base_url: str, sha256: str, filename: str, log_index: int | None) -> dict[str, str]:
    """The upload answer's pointers: the receipt's Link and, for a file the upload created,
    ``Assay-Log-Index: <its upload entry's index>``."""
    headers = {"Link": receipt_link(base_url, sha256, filename)}
    if log_index is not None:
        headers["Assay-Log-Index"] = str(log_index)
    return headers


#: Before the index's ``/files/{key:path}`` (assay.app.asgi), which would otherwise take it.
receipt_routes: list[BaseRoute] = [
    Route(FILES_PREFIX + "{key:path}" + proof.SUFFIX, receipt_route, methods=["GET", "HEAD"]),
]
