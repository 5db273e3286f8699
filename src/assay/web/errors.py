"""What an error the application did not expect is answered with (issue 10, item 12).

An outage is not a bug, and the client should be told which it is:

* the database cannot be reached, or did not answer in time (``assay.storage.db``'s statement
  and pool timeouts), or the pool has no free connection: **503** with ``Retry-After``, "the
  database is unavailable";
* the disk (or the quota) is full, ``ENOSPC`` / ``EDQUOT`` while storing an upload: **507
  Insufficient Storage** (RFC 4918 section 11.5: the server cannot store what is needed to
  complete the request), "storage full";
* any other failure of the storage itself (I/O error, a read-only or vanished file system, no
  file descriptors left): **503** with ``Retry-After``, "the storage is unavailable".

Everything else is a bug: 500, with the traceback in the log.

Starlette's ``ServerErrorMiddleware``, which answers the 500, re-raises the exception afterwards
"so that servers can log it"; uvicorn then closes the connection, so a keep-alive client's next
request on it got nothing at all. ``KeepConnection`` takes that re-raise back once the 500 has
been sent in full (and logged by ``server_error``), so the connection stays usable.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assay.web.responses import TextError

log = logging.getLogger("assay")

#: Seconds a client is asked to wait before retrying after an outage (RFC 9110 10.2.3).
RETRY_AFTER = 5

#: SQLAlchemy's errors for "the database is not there": connection refused or lost, a timeout
#: (statement, reply, connect), no free pooled connection. IntegrityError and the like are bugs.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    sa.exc.DisconnectionError,
)
STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
STORAGE_DOWN = frozenset({errno.EIO, errno.EROFS, errno.ESTALE, errno.ENODEV, errno.EMFILE, errno.ENFILE})
#: Exception classes ``outage_error`` is registered for (the rest reach ``server_error``).
HANDLED: tuple[type[BaseException], ...] = (*DATABASE_DOWN, OSError)

_ANSWERED = "assay.server_error_answered"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it (an OSError may arrive wrapped by the layer above)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def outage_response(exc: BaseException) -> Response | None:
    """The 503/507 answer for an outage, or None when ``exc`` is not one."""
    retry = {"retry-after": str(RETRY_AFTER)}
    for item in _chain(exc):
        if isinstance(item, DATABASE_DOWN):
            return TextError(503, "The database is unavailable; retry later.", headers=retry)
        if isinstance(item, OSError) and item.errno in STORAGE_FULL:
            return TextError(
                507, "Storage full: the index has no space left to store this; retry later.", headers=retry
            )
        if isinstance(item, OSError) and item.errno in STORAGE_DOWN:
            return TextError(503, "The storage is unavailable; retry later.", headers=retry)
    return None


async def outage_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for ``HANDLED``."""
    response = outage_response(exc)
    if response is None:
        return await server_error(request, exc)
    log.warning("%s %s answered %d: %s", request.method, request.url.path, response.status_code, exc)
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    response = outage_response(exc)
    if response is not None:  # e.g. an outage wrapped in an exception of another class
        log.warning("%s %s answered %d: %s", request.method, request.url.path, response.status_code, exc)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        response = TextError(500, "Internal server error; the details are in the server's log.")
    request.scope[_ANSWERED] = True
    return response


class KeepConnection:
    """Outside Starlette's error middleware: swallow its re-raise of an exception it has already
    answered (see the module docstring). Anything else propagates to uvicorn as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False

        async def watch(message: Message) -> None:
            nonlocal complete
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if not (complete and scope.get(_ANSWERED)):
                raise
