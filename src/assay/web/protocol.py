"""uvicorn's HTTP protocol with a deadline and a size cap for a request's line and headers.

uvicorn (0.54) times out only idle keep-alive connections: a client that connects and sends
nothing, or sends its headers one byte every few seconds (slow-loris), holds a connection open
forever, and httptools buffers a header of any length. This subclass adds (issue 6, "Security
headers and limits"):

* ``header_timeout``: from the connection, or a request's first byte, its line and headers must
  be complete within this many seconds; otherwise the client gets 408 and the connection closes;
* ``max_header_size``: once the bytes read while a request's headers are incomplete exceed this,
  the client gets 431 and the connection closes (the memory held is at most this plus one read).

It also writes the read path's cache hits to the connection itself, below ASGI (issue 17):
once a request's headers are parsed, the application's lane (``wire_lane``, the
``index.fastpath.ReadFastPath``) is asked for a ``web.wire.WireAnswer``; see ``web.wire`` for
what that saves and which requests are left to uvicorn's own ASGI cycle.

The limits travel on the uvicorn ``Config`` object (``config.assay_limits``), which is what each
worker process receives with ``--workers N``. Like ``reason.py`` this leans on uvicorn internals;
``tests/reliability/test_security.py`` proves both limits against a real server.

Because the subclass overrides uvicorn's private callbacks (and ``reason.py`` replaces its
status-line tables), it is correct only for the uvicorn minor versions it was written and tested
against: pyproject.toml pins that range and ``check_uvicorn_version`` refuses to serve with any
other, with an error that says so, rather than run with limits that silently do nothing.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httptools
import uvicorn
from packaging.version import InvalidVersion, Version
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from assay.web.wire import DefaultHeaders, FileSender, WireAnswer, WireLane

#: The uvicorn minor versions (major, minor) whose protocol internals this module and
#: ``assay.web.reason`` are written against; keep in step with the pin in pyproject.toml.
TESTED_UVICORN = frozenset({(0, 54)})


class UnsupportedUvicorn(RuntimeError):
    """The installed uvicorn is not one whose internals ``GuardedHttpToolsProtocol`` overrides."""


def check_uvicorn_version(version: str | None = None) -> None:
    """Refuse to start on a uvicorn this module was not tested with (its private callbacks and
    tables may have changed, and the header limits would then be skipped without a word)."""
    found = version if version is not None else uvicorn.__version__
    try:
        release = Version(found).release
    except InvalidVersion:
        release = ()
    if tuple(release[:2]) not in TESTED_UVICORN:
        tested = ", ".join(f"{major}.{minor}.x" for major, minor in sorted(TESTED_UVICORN))
        raise UnsupportedUvicorn(
            f"uvicorn {found} is installed, but assay's HTTP protocol limits (assay.web.protocol) "
            f"are written against uvicorn {tested} only: install a tested version "
            "(pip install -e . picks it) or update assay.web.protocol and its tests."
        )


@dataclass(frozen=True)
class ProtocolLimits:
    header_timeout: float = 10.0
    max_header_size: int = 64 * 1024
    #: Ask the application's lane for answers written on the wire (``web.wire``).
    wire_answers: bool = True


class _HeadersTooLarge(httptools.HttpParserError):
    """Raised from a parser callback; uvicorn's error path then answers (see send_400_response)."""


def _raw_response(status: bytes, message: str) -> bytes:
    body = message.encode("ascii")
    return b"".join(
        [
            b"HTTP/1.1 " + status + b"\r\n",
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"x-content-type-options: nosniff\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


#: The status line of every answer written on the wire (a 200: the lane answers only hits).
_OK = b"HTTP/1.1 200 OK\r\n"

#: The server's ``Date`` header as bytes, shared by all connections (it changes once a second).
_DEFAULTS = DefaultHeaders()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = getattr(self.config, "assay_limits", None) or ProtocolLimits()
        # The application's lane for answers written here (``web.wire``): found on assay's own
        # application, or below uvicorn's proxy-headers wrapper, whose rewrite of the scope is
        # then made here (``_forwarded``); any other wrapper (trace logging) turns the lane off
        # rather than being skipped.
        app = self.app
        self._trusted: Any = None
        if isinstance(app, ProxyHeadersMiddleware):
            self._trusted = app.trusted_hosts
            app = app.app
        self._lane: WireLane | None = getattr(app, "wire_lane", None) if limits.wire_answers else None
        self._wired = False  # the current request was answered on the wire
        self._header_timeout = limits.header_timeout
        self._max_header_size = limits.max_header_size
        self._header_timer: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._raw_header_bytes = 0  # bytes read while the headers were incomplete
        self._header_bytes = 0  # bytes of request line and headers parsed
        self._oversized = False

    # -- the deadline --
    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout, self._headers_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.logger.info(
                "closing a connection whose request headers did not arrive within %gs", self._header_timeout
            )
            self.transport.write(
                _raw_response(b"408 Request Timeout", "The request headers did not arrive in time.\n")
            )
            self.transport.close()

    # -- protocol events --
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading_headers = True
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            # Counted after parsing: a read that completes the headers (and carries the start of
            # a body) resets the count in on_headers_complete and is never held against them.
            self._raw_header_bytes += len(data)
            if self._raw_header_bytes > self._max_header_size:
                self._reject_oversized()

    def _reject_oversized(self) -> None:
        self._disarm_header_timer()
        self.logger.info("closing a connection whose request headers exceed %d bytes", self._max_header_size)
        self.transport.write(
            _raw_response(
                b"431 Request Header Fields Too Large",
                f"The request line and headers exceed {self._max_header_size} bytes.\n",
            )
        )
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        if self._oversized:
            self._reject_oversized()
            return
        super().send_400_response(msg)

    # -- parser callbacks --
    def on_message_begin(self) -> None:
        self._wired = False
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, n: int) -> None:
        # Many small headers in one read: caught here, before the read is over.
        self._header_bytes += n
        if self._header_bytes > self._max_header_size:
            self._oversized = True
            raise _HeadersTooLarge("request headers too large")

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        self._reading_headers = False
        self._header_bytes = self._raw_header_bytes = 0
        if self._lane is not None and self._answer_on_the_wire(self._lane):
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._wired:  # a wired request has no body (the lane refuses those)
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._wired:
            super().on_message_complete()

    # -- answers written on the wire (web.wire) --
    def _answer_on_the_wire(self, lane: WireLane) -> bool:
        """Answer the request whose headers were just parsed with the lane's ``WireAnswer``,
        if it is one the lane may answer and has; else False (uvicorn and the ASGI stack
        answer it, as for any request)."""
        parser = self.parser
        cycle = self.cycle
        if (
            self.expect_100_continue
            or self.root_path
            or self.pipeline  # requests queued behind a response still being sent
            or (cycle is not None and not cycle.response_complete)
            or self.flow.write_paused
            or self.transport.is_closing()
            or parser.should_upgrade()
            or parser.get_http_version() != "1.1"
        ):
            return False
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            return False  # uvicorn answers its 503
        method = parser.get_method()
        url = self.url
        if method not in (b"GET", b"HEAD") or url[:1] != b"/" or b"?" in url or b"%" in url or b"#" in url:
            return False
        try:
            path = url.decode("ascii")
        except UnicodeDecodeError:
            return False
        scope = self.scope
        # What uvicorn's on_headers_complete puts in the scope for this request (no root path,
        # nothing to unquote, no query); if the lane declines, it sets them again itself.
        scope["method"] = method.decode("ascii")
        scope["path"] = path
        scope["raw_path"] = url
        scope["query_string"] = b""
        if self._trusted is not None:
            self._forwarded()
        sendfile = self.scheme == "http" and self.transport.get_write_buffer_size() == 0
        try:
            answer = lane.wire_answer(scope, sendfile=sendfile)  # type: ignore[arg-type]
        except Exception:  # the ASGI stack repeats the work and answers the error as tested
            answer = None
        sock_fd = None
        if answer is not None and answer.fd is not None:
            try:
                sock_fd = os.dup(self.transport.get_extra_info("socket").fileno())
            except (AttributeError, OSError):  # no socket to send on: the ASGI stack sends it
                os.close(answer.fd)
                answer = None
        if answer is None:
            # As the connection gave them: uvicorn's wrapper rewrites them again on its way.
            scope["client"], scope["scheme"] = self.client, self.scheme  # type: ignore[typeddict-item]
            return False
        self._wired = True
        keep_alive = parser.should_keep_alive()
        head = b"".join(
            (
                _OK,
                _DEFAULTS.block(self.server_state.default_headers),
                answer.head,
                b"" if keep_alive else b"connection: close\r\n",
                b"\r\n",
            )
        )
        if self.access_log:  # the line uvicorn's send writes
            self.access_logger.info('%s - "%s %s HTTP/%s" %d', *self._access_fields(), 200)
        if sock_fd is not None:
            self._send_file(answer, sock_fd, head, keep_alive)
            return True
        if answer.body:
            self.transport.writelines((head, answer.body))  # one writev, no joined copy
        else:
            self.transport.write(head)
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()
        return True

    def _forwarded(self) -> None:
        """What uvicorn's ``ProxyHeadersMiddleware`` does to the scope (0.54): from a trusted
        proxy, the scheme from ``X-Forwarded-Proto`` and the client from ``X-Forwarded-For``,
        parsed and checked by the middleware's own trusted-hosts object."""
        scope = self.scope
        client = scope.get("client")
        if not client or client[0] not in self._trusted:
            return
        proto: bytes | None = None
        forwarded_for: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-proto":
                proto = value
            elif name == b"x-forwarded-for":
                forwarded_for.append(value)
        if proto is not None and (scheme := proto.decode("latin1").strip()) in {"http", "https", "ws", "wss"}:
            scope["scheme"] = scheme
        if forwarded_for:
            host, port = self._trusted.get_trusted_client_address(b", ".join(forwarded_for).decode("latin1"))
            if host:
                scope["client"] = (host, port)

    def _access_fields(self) -> tuple[str, str, str, str]:
        client = self.scope.get("client")
        address = f"{client[0]}:{client[1]}" if client else ""
        return (address, self.scope["method"], quote(self.scope["path"]), "1.1")

    def _send_file(self, answer: WireAnswer, sock_fd: int, head: bytes, keep_alive: bool) -> None:
        """The head and the file by ``sendfile(2)`` on a duplicate of the socket (``web.wire``);
        a cycle that is never run stands for the request, so that uvicorn queues pipelined
        requests behind it and its shutdown waits for it, as for an ASGI response."""
        assert answer.fd is not None
        cycle = RequestResponseCycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=False,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=keep_alive,
            on_response=self.on_response_complete,
        )
        cycle.response_started = True
        self.cycle = cycle
        transport = self.transport

        def done(ok: bool) -> None:
            cycle.response_complete = True
            if not ok:
                transport.abort()  # a cut-off body: the client must see the connection end
            elif not cycle.keep_alive:  # Connection: close, or the server is shutting down
                transport.close()
            cycle.on_response()

        def cancelled() -> bool:
            return cycle.disconnected or transport.is_closing()

        FileSender(self.loop, sock_fd, head, answer.fd, answer.length, done, cancelled).start()
