"""Answers written straight to the connection, below ASGI (issue 17, item 3).

A cache hit of a simple page or a file is, once the application's fast lane
(``index.fastpath``) has found it, a status line, a header block and a body that are the same
bytes every time. Handing them to uvicorn as ASGI messages still costs, per request, a
``RequestResponseCycle``, an asyncio task, two awaited ``send`` calls that check and join every
header again, and the task's wake-ups: most of what was left of a page's CPU once the
application's own layers were folded (docs/benchmarks.md, issue 17). ``GuardedHttpToolsProtocol``
(``web.protocol``) therefore asks the application's lane, as soon as a request's headers are
parsed, for a ``WireAnswer`` and, given one, writes it to the transport itself:

* the header block is built and checked once per prepared answer (``header_block``, with the
  very checks uvicorn's ``send`` makes), and joined per request with the server's default
  headers (``Date``), as uvicorn's ``send`` would put them first;
* a large file's bytes go from the page cache to the socket with ``sendfile(2)``
  (``FileSender``): zero copy, which neither uvicorn's ASGI interface nor uvloop's
  ``loop.sendfile`` offers. uvloop's transport owns the socket's descriptor, so the sender
  works on a duplicate of it (``os.dup``: the same socket), while the transport, whose write
  buffer is empty when it starts, is not written to: the request is the connection's current
  one (a ``RequestResponseCycle`` that is never run stands for it), so uvicorn queues any
  pipelined request behind it exactly as behind an ASGI response. Not over TLS, where the
  bytes must go through the transport's encryption.

Everything else a request might need (a body, a query, conditional or range headers, an
upgrade, ``Expect``, HTTP/1.0, a response still being sent, a paused writer, the concurrency
limit, a wrapper uvicorn puts around the application other than its proxy-headers one, whose
rewrite ``web.protocol`` repeats) leaves the request to uvicorn and the ASGI stack, as before;
``tests/index/test_wire_lane.py`` compares the bytes on the wire of both paths.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

Headers = list[tuple[bytes, bytes]]

#: Most bytes one ``sendfile`` call is asked for; between calls the sender yields to the loop
#: (``call_soon``), so one fast client's large file never holds the other connections up.
SENDFILE_CHUNK = 4 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class WireAnswer:
    """A whole 200 answer: ``head`` (``header_block`` of its headers), then ``body``, or, when
    ``fd`` is set, ``length`` bytes of that open file from its start (the receiver closes it)."""

    head: bytes
    body: bytes = b""
    fd: int | None = None
    length: int = 0


@dataclass(slots=True, frozen=True)
class Prepared:
    """A whole 200 worked out once: the raw headers (for an ASGI answer), their header block,
    the body, and the two answers on the wire (GET, and HEAD without the body)."""

    headers: Headers
    head: bytes
    body: bytes
    get: WireAnswer
    head_only: WireAnswer

    @classmethod
    def of(cls, headers: Headers, body: bytes = b"") -> Prepared:
        head = header_block(headers)
        return cls(headers, head, body, WireAnswer(head, body), WireAnswer(head))


class WireLane(Protocol):
    """What the protocol asks the application for (``index.fastpath.ReadFastPath``)."""

    def wire_answer(self, scope: dict[str, object], *, sendfile: bool) -> WireAnswer | None:
        """The answer to this request (method, path, headers and the connection's fields
        filled in, as in an ASGI scope), or None for the ASGI stack to answer. ``sendfile``
        says whether a large file may be answered by descriptor (else only bytes)."""
        ...


def header_block(headers: Headers) -> bytes:
    """``name: value\\r\\n`` lines of ``headers``, refused as uvicorn's ``send`` refuses them
    (a name or value that could split the response), with names lower-cased as it writes them."""
    lines = []
    for name, value in headers:
        if HEADER_RE.search(name):
            raise ValueError(f"invalid HTTP header name {name!r}")
        if HEADER_VALUE_RE.search(value):
            raise ValueError(f"invalid HTTP header value for {name!r}")
        lines.append(name.lower() + b": " + value + b"\r\n")
    return b"".join(lines)


class DefaultHeaders:
    """The server's default headers (uvicorn's ``server_state.default_headers``: ``Date``,
    replaced once a second) as bytes, joined once per list."""

    def __init__(self) -> None:
        self._source: Headers | None = None
        self._block = b""

    def block(self, current: Headers) -> bytes:
        if current is not self._source:
            self._block = b"".join(name + b": " + value + b"\r\n" for name, value in current)
            self._source = current
        return self._block


class FileSender:
    """Writes ``head`` and then ``length`` bytes of ``fd`` to the socket ``sock_fd`` (a
    duplicate of the transport's, which the sender owns and closes), waiting for it to be
    writable when it is full; ``done(ok)`` is called once, after both descriptors are closed
    (``ok`` False: the client went away or an error ended the transfer)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock_fd: int,
        head: bytes,
        fd: int,
        length: int,
        done: Callable[[bool], None],
        cancelled: Callable[[], bool],
    ) -> None:
        self._loop = loop
        self._sock = sock_fd
        self._head = memoryview(head)
        self._fd = fd
        self._offset = 0
        self._length = length
        self._done = done
        self._cancelled = cancelled
        self._waiting = False
        self._finished = False

    def start(self) -> None:
        self._step()

    def _step(self) -> None:
        if self._finished:
            return
        if self._cancelled():
            self._finish(False)
            return
        try:
            while self._head:
                self._head = self._head[os.write(self._sock, self._head) :]
            sent = 0
            while self._offset < self._length and sent < SENDFILE_CHUNK:
                n = os.sendfile(self._sock, self._fd, self._offset, min(SENDFILE_CHUNK, self._length - self._offset))
                if n == 0:  # the file is shorter than its row says: blobs are immutable, so never
                    raise OSError(f"short file: {self._offset} of {self._length} bytes")
                self._offset += n
                sent += n
        except (BlockingIOError, InterruptedError):
            if not self._waiting:
                self._loop.add_writer(self._sock, self._step)
                self._waiting = True
            return
        except OSError:  # the client went away (EPIPE, ECONNRESET), or the file failed
            self._finish(False)
            return
        if self._offset < self._length:
            if self._waiting:  # the socket is not full: continue after the loop's other work
                self._loop.remove_writer(self._sock)
                self._waiting = False
            self._loop.call_soon(self._step)
            return
        self._finish(True)

    def _finish(self, ok: bool) -> None:
        self._finished = True
        if self._waiting:
            self._loop.remove_writer(self._sock)
            self._waiting = False
        os.close(self._sock)
        os.close(self._fd)
        self._done(ok)

