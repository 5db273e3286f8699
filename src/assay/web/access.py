"""Who may read: on a private index any valid token may, on a public one anyone (every read
route, the simple API, files, the JSON API and the Integrity API, asks here)."""

from __future__ import annotations

from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from assay.accounts.auth import AuthError, authenticate
from assay.config import Settings
from assay.storage.db import Database
from assay.web.responses import TextError


class Services(Protocol):
    """What deciding read access needs of the application: its settings and database."""

    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...


def check_read_access(request: Request, svc: Services) -> Response | None:
    """For a private index: any valid token may read. Returns an error response or None."""
    if not svc.settings.private:
        return None
    try:
        with svc.db.read() as session:
            authenticate(session, request.headers.get("authorization"), svc.settings.token_prefix)
    except AuthError as exc:
        return auth_error(exc)
    return None


def auth_error(exc: AuthError) -> Response:
    """What a refused credential is answered with, on every route that authenticates."""
    # RFC 9110 §11.6.1: a 401 says how to authenticate (pip then asks its keyring).
    headers = {"www-authenticate": 'Basic realm="assay"'} if exc.status == 401 else None
    return TextError(exc.status, str(exc), headers=headers)


async def read_access(request: Request, svc: Services) -> Response | None:
    """``check_read_access`` for async routes: a public index costs no thread hop."""
    if not svc.settings.private:
        return None
    return await run_in_threadpool(check_read_access, request, svc)
