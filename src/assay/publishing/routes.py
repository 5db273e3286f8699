"""Trusted Publishing over HTTP, at the host root (clients derive these URLs from the upload
URL's host and drop its path: uv, twine, the PyPA action), and under each named index
(``/team/_/oidc/...``, found through PEP 807 discovery: issue 11, part 3).

* ``GET /_/oidc/audience`` and ``POST /_/oidc/mint-token`` in PyPI's shapes (plus
  ``/_/oidc/github/mint-token``, the legacy path maturin still calls);
* ``POST /_/oidc/revoke-token`` (and ``/_/oidc/burn-token``, the name uv calls after
  publishing) so a job can kill its token when done;
* ``GET /.well-known/pytp?discover=<upload path>``: PEP 807 discovery (draft of 2026-01-23).

Failures carry PyPI's ``message`` + ``errors[{code, description}]`` (what every client parses)
and the RFC 9457 members PEP 807 requires (``type``, ``title``, ``status``, ``detail``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from assay import mediatypes as mt
from assay.indexes import IndexRef
from assay.publishing.interfaces import publishing_services as services
from assay.publishing.service import DEFAULT_FEATURES, FEATURES, MintError, TrustedPublishing
from assay.storage.models import DEFAULT_INDEX_NAME
from assay.web import refusals
from assay.web.access import request_index
from assay.web.negotiation import Offer, Offers, negotiate
from assay.web.responses import JSONError

PROBLEM_JSON = mt.PROBLEM_JSON
PYTP_JSON = mt.PYTP_JSON_V1
#: Upload paths served here (PEP 807 discovery keys), compared without a trailing slash.
UPLOAD_PATHS = {"/legacy"}
_TITLES = {
    "invalid-payload": "Invalid token request",
    "invalid-token": "Invalid OIDC token",
    "invalid-publisher": "No matching trusted publisher",
    "invalid-pending-publisher": "Pending publisher no longer valid",
    "invalid-reuse-token": "OIDC token already used",
    "not-found": "Not found",
    "not-acceptable": "Not acceptable",
}


def problem(code: str, description: str, status: int = 422, message: str = "Token request failed") -> Response:
    body: dict[str, Any] = {
        # PyPI's shape, which twine, uv and the PyPA action read.
        "message": message,
        "errors": [{"code": code, "description": description}],
        # RFC 9457 problem details (PEP 807).
        "type": f"urn:assay:trusted-publishing:{code}",
        "title": _TITLES.get(code, "Trusted Publishing error"),
        "status": status,
        "detail": description,
    }
    return JSONError(status, f"{message}: {description}", body=body, media_type=PROBLEM_JSON)


def _tp(request: Request) -> TrustedPublishing:
    return services(request).trusted_publishing


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


def _index(request: Request) -> IndexRef | Response | None:
    """The index of a ``/<index>/_/oidc/...`` request; None at the site root."""
    if "index" not in request.path_params:
        return None
    return request_index(request, services(request))


async def audience(request: Request) -> Response:
    index = _index(request)
    if isinstance(index, Response):
        return index
    tp = _tp(request)
    return JSONResponse({"audience": tp.audience if index is None else tp.audience_of(index)})


MAX_BODY = 64 * 1024


async def _bounded_body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than any token request can be."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


async def mint_token(request: Request) -> Response:
    # The body is JSON whatever the Content-Type says (PyPI's behaviour; curl sends
    # form-encoding, older uv sent no Content-Type).
    body = await _bounded_body(request)
    if body is None:
        too_large = "the request body is too large (a token is at most 16 KiB)"
        await refusals.exchange_refused(services(request).db, b"", _remote(request), "invalid-payload", too_large)
        return problem("invalid-payload", too_large, status=413)
    index = _index(request)
    if isinstance(index, Response):
        return index
    tp = _tp(request)
    try:
        minted = await run_in_threadpool(partial(tp.mint, body, _remote(request), index=index))
    except MintError as exc:
        # Issue 10, item 14: logged and audited (reason code, issuer, subject; never the JWT).
        await refusals.exchange_refused(services(request).db, body, _remote(request), exc.code, exc.description)
        return problem(exc.code, exc.description)
    return JSONResponse({"success": True, "token": minted.token, "expires": int(minted.expires.timestamp())})


async def revoke_token(request: Request) -> Response:
    body = await _bounded_body(request)
    if body is None:
        return problem(
            "invalid-payload", "the request body is too large", status=413, message="Token revocation failed"
        )
    try:
        await run_in_threadpool(_tp(request).revoke, body, _remote(request))
    except MintError as exc:
        return problem(exc.code, exc.description, message="Token revocation failed")
    return JSONResponse({"success": True})


#: PEP 807: no Accept means the vnd type; we also take plain JSON and problem+json (what
#: requests and httpx send, or a client expecting an error), and answer 406 only for other types.
_PYTP_OFFERS = Offers([Offer(PYTP_JSON, frozenset({PYTP_JSON, mt.JSON, PROBLEM_JSON}))])


#: PEP 807 discovery answers name endpoints (from the Host header when no base URL is set): no
#: cache may keep one and hand it to a client that asked under another name (issue 10, item 8).
NO_STORE = {"cache-control": "no-store"}


async def discover(request: Request) -> Response:
    response = _discover(request)
    response.headers.update(NO_STORE)
    return response


def _discover(request: Request) -> Response:
    if negotiate(request.headers.get("accept"), _PYTP_OFFERS) is None:
        return problem("not-acceptable", f"this endpoint serves {PYTP_JSON}", status=406, message="Not acceptable")
    # Starlette decodes the query with form rules, so "+" and "%20" both mean a space, as
    # PEP 807's quote_plus example produces.
    key = request.query_params.get("discover")
    if key is None:
        return problem(
            "invalid-payload",
            "missing the 'discover' query parameter (the upload URL's path)",
            status=400,
            message="Discovery failed",
        )
    path = key.rstrip("/") or ""
    svc = services(request)
    base = svc.base_url(request)
    head, _, tail = path.lstrip("/").partition("/")
    named = svc.indexes.by_name(head) if tail and head != DEFAULT_INDEX_NAME else None
    if named is not None and f"/{tail}" in UPLOAD_PATHS:
        base += named.prefix  # PEP 807: that index's own endpoints, with its own audience
    elif path not in UPLOAD_PATHS:
        # PEP 807: 404 when Trusted Publishing is not available for that upload URL.
        return problem(
            "not-found", f"no upload endpoint at {key!r} on this host", status=404, message="Discovery failed"
        )
    return JSONResponse(
        {
            "audience-endpoint": f"{base}/_/oidc/audience",
            "token-mint-endpoint": f"{base}/_/oidc/mint-token",
            # Not in PEP 807 (yet): where a job can revoke its token when done.
            "token-revocation-endpoint": f"{base}/_/oidc/revoke-token",
            "features": list(FEATURES),
            "default-features": list(DEFAULT_FEATURES),
        },
        media_type=PYTP_JSON,
    )


#: Served at the site root and under each named index.
routes = [
    Route("/_/oidc/audience", audience, methods=["GET"]),
    Route("/_/oidc/mint-token", mint_token, methods=["POST"]),
    Route("/_/oidc/github/mint-token", mint_token, methods=["POST"]),
    Route("/_/oidc/revoke-token", revoke_token, methods=["POST"]),
    Route("/_/oidc/burn-token", revoke_token, methods=["POST"]),
]
#: Served at the site root only.
site_routes = [
    Route("/.well-known/pytp", discover, methods=["GET"]),
]
