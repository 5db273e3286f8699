"""uvicorn's HTTP protocol with a deadline and a size cap for a request's line and headers.

uvicorn (0.54) times out only idle keep-alive connections: a client that connects and sends
nothing, or sends its headers one byte every few seconds (slow-loris), holds a connection open
forever, and httptools buffers a header of any length. This subclass adds (issue 6, "Security
headers and limits"):

* ``header_timeout``: from the connection, or a request's first byte, its line and headers must
  be complete within this many seconds; otherwise the client gets 408 and the connection closes;
* ``max_header_size``: once the bytes read while a request's headers are incomplete exceed this,
  the client gets 431 and the connection closes (the memory held is at most this plus one read).

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
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from packaging.version import InvalidVersion, Version
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = getattr(self.config, "assay_limits", None) or ProtocolLimits()
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
        super().on_headers_complete()
