"""Which index a request is for, and who may read it: on a private index any valid token *of
that index* may, on a public one anyone (every read route, the simple API, files, the JSON API,
the Integrity API and the log, asks here).

A route under ``/<name>/...`` carries the index's name as the ``index`` path parameter; a
route at the site root has none and is the default index's (issue 11, part 3).
"""

from __future__ import annotations

from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from assay.accounts.auth import AuthError, authenticate
from assay.config import Settings
from assay.indexes import Indexes, IndexRef
from assay.storage.db import Database
from assay.storage.models import DEFAULT_INDEX_NAME
from assay.web.responses import TextError


class Services(Protocol):
    """What deciding read access needs of the application: settings, database, the indexes."""

    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def indexes(self) -> Indexes: ...


def request_index(request: Request, svc: Services) -> IndexRef | Response:
    """The index a request names, or a 404 that says there is none by that name."""
    name = request.path_params.get("index")
    if name is None:
        return svc.indexes.default()
    # The default index lives at the root only: one index, one set of URLs.
    ref = svc.indexes.by_name(name) if name != DEFAULT_INDEX_NAME else None
    if ref is None:
        return TextError(404, f"No index named {name!r} on this server.")
    return ref


def check_read_access(request: Request, svc: Services, index: IndexRef) -> Response | None:
    """For a private index: any valid token of that index may read. An error response or None."""
    if not index.is_private(svc.settings.private):
        return None
    try:
        with svc.db.read() as session:
            authenticate(
                session, request.headers.get("authorization"), svc.settings.token_prefix, index.id, index.name
            )
    except AuthError as exc:
        return auth_error(exc)
    return None


def auth_error(exc: AuthError) -> Response:
    """What a refused credential is answered with, on every route that authenticates."""
    # RFC 9110 §11.6.1: a 401 says how to authenticate (pip then asks its keyring).
    headers = {"www-authenticate": 'Basic realm="assay"'} if exc.status == 401 else None
    return TextError(exc.status, str(exc), headers=headers)


def open_index(request: Request, svc: Services) -> IndexRef | Response:
    """The request's index, if it exists and the caller may read it; else the error response."""
    index = request_index(request, svc)
    if isinstance(index, Response):
        return index
    return check_read_access(request, svc, index) or index


async def open_index_async(request: Request, svc: Services) -> IndexRef | Response:
    """``open_index`` for async routes: a public index costs no thread hop."""
    index = request_index(request, svc)
    if isinstance(index, Response):
        return index
    if not index.is_private(svc.settings.private):
        return index
    return await run_in_threadpool(check_read_access, request, svc, index) or index
