"""Security headers and request-body limits, as pure ASGI (issue 6, "Security headers and limits").

Two layers, because they must sit at different depths of the application:

* ``SecurityHeaders`` wraps the whole Starlette application (outside its error middleware), so
  every response, a 500 included, carries ``X-Content-Type-Options: nosniff``, a restrictive
  ``Content-Security-Policy`` (the pages are plain links: no script, style, frame or form is ever
  needed), ``Referrer-Policy: no-referrer`` and ``X-Frame-Options: DENY``, and never a ``Server``
  header.
* ``BodyLimits`` sits inside it (a Starlette middleware, so what it raises becomes an ordinary
  error response): a request body may not exceed ``max_request_body`` (uploads excepted: they
  have their own, larger limit in ``assay.upload``), may not pause longer than ``body_timeout``
  seconds, and must average ``body_min_rate`` bytes per second once ``body_timeout`` seconds have
  passed. A client that trickles a body byte by byte (slow-loris) is answered 408 and the
  connection is closed; an upload cut off this way is discarded like any failed upload.

What happens before a request reaches the application (the request line and headers arriving
too slowly, or too many of them) is bounded in ``assay.web.protocol``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assay.web.responses import TextError

#: Pages are lists of links and JSON documents: nothing may be loaded, framed or submitted.
CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

_ADDED: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
)

#: Paths whose bodies are bounded by the upload limit (``max_upload_size``) instead.
UPLOAD_PATHS = frozenset({"/legacy", "/legacy/"})

#: Where clients upload by mistake (the index's root and simple URL): a POST there is answered
#: 405 naming the upload URL (``assay.upload.misdirected``) without its body being read, so the
#: general body limit must not pre-empt that answer with a 413 about the wrong thing.
MISDIRECTED_UPLOAD_PATHS = frozenset({"/", "/simple", "/simple/"})

#: Closing after a refused body: the unread rest of it must not be parsed as the next request.
_CLOSE = {"connection": "close"}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_security_headers(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` as sent: without ``Server``, with each security header the response does not
    set itself. Also what ``index.fastpath`` builds its prepared header lists with."""
    sent = [(k, v) for k, v in headers if k.lower() != b"server"]
    present = {k.lower() for k, _ in sent}
    sent += [(k, v) for k, v in _ADDED if k not in present]
    return sent


@dataclass(frozen=True)
class BodyRules:
    max_body: int
    timeout: float
    min_rate: float


class _Deadline:
    """When the next piece of a body must have arrived (see the module docstring)."""

    def __init__(self, rules: BodyRules) -> None:
        self.rules = rules
        self.started = time.monotonic()
        self.received = 0

    def seconds_left(self) -> float:
        now = time.monotonic()
        by_pause = self.rules.timeout
        if self.rules.min_rate > 0:
            by_rate = self.started + max(self.rules.timeout, self.received / self.rules.min_rate) - now
            return min(by_pause, by_rate)
        return by_pause


class BodyLimits:
    def __init__(self, app: ASGIApp, max_body: int, timeout: float, min_rate: float) -> None:
        self.app = app
        self.rules = BodyRules(max_body, timeout, min_rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limited = scope["path"] not in UPLOAD_PATHS and not (
            scope["method"] == "POST" and scope["path"] in MISDIRECTED_UPLOAD_PATHS
        )
        if limited:
            declared = _content_length(scope)
            if declared is not None and declared > self.rules.max_body:
                # Refused before a byte of it is read.
                await TextError(413, self._too_large(), headers=_CLOSE)(scope, receive, send)
                return
        deadline = _Deadline(self.rules)
        done = False

        async def guarded_receive() -> Message:
            nonlocal done
            if done:
                return await receive()
            try:
                # asyncio.timeout, not wait_for: it waits in this very task, so a cancellation
                # from outside (uvicorn giving up on a request at shutdown) is never lost and the
                # handler's clean-up (discarding a staged upload) runs as without this layer.
                async with asyncio.timeout(max(deadline.seconds_left(), 0.0)):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"The request body arrived too slowly (it may not pause for more than "
                    f"{self.rules.timeout:g} s, and must average at least {self.rules.min_rate:g} bytes/s "
                    "after that); the connection is closed.",
                    headers=_CLOSE,
                ) from None
            if message["type"] == "http.request":
                deadline.received += len(message.get("body", b""))
                if limited and deadline.received > self.rules.max_body:
                    raise HTTPException(413, self._too_large(), headers=_CLOSE)
                if not message.get("more_body", False):
                    done = True
            else:
                done = True
            return message

        await self.app(scope, guarded_receive, send)

    def _too_large(self) -> str:
        return f"Request body too large: this endpoint accepts at most {self.rules.max_body} bytes."


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
