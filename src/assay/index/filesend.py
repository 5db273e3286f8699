"""Distribution and ``.metadata`` files at the limit (issue 17, item 1).

A file is immutable and addressed by its key (a filename can never be reused, as on PyPI), so
everything a response says about it except the bytes is worked out once: its row (sha256,
filename, project), its status line's headers as raw bytes, its size, and for a small file the
bytes themselves, in a bounded in-process cache (``FileCache``). What can change is whether the
file may be served at all (a quarantine, PEP 792, or a removal): both move the project's serial
(``assay.storage.changes``), so a cached entry is used only while the project's serial is the
one it was made under, which costs what ``assay.index.serials`` costs (nothing on a hit).

The bytes of a file on the filesystem store are sent from the event loop itself. Under
assay's uvicorn protocol a cache hit goes out with zero copy: ``web.protocol`` writes it below
ASGI and a large file by ``sendfile(2)`` on the socket (``web.wire``; uvicorn 0.54, pinned in
pyproject.toml, offers no ASGI pathsend extension, and uvloop no ``loop.sendfile``). Through
ASGI (the first request for a file, a range, under TLS) it is read with ``os.pread`` in large
chunks (``CHUNK``) and handed to the server one chunk per ASGI message. A server that offers
pathsend (granian, ``assay serve --server granian``) is handed a large file by its path instead
(``PATHSEND``); granian's is not zero copy, and measured slower than these preads
(docs/benchmarks.md). What the chunking buys over Starlette's ``FileResponse`` /
``StreamingResponse`` (256 KiB reads in worker threads, a thread hop and futex wake-ups per
chunk) is measured in docs/benchmarks.md. Behind a reverse proxy the
transfer can be handed to it instead (setting ``accel_redirect_prefix``: nginx's
``X-Accel-Redirect``), which is zero copy. assay still decides (index, read access, quarantine,
If-None-Match); nginx needs an internal location over the blob directory that keeps assay's ETag
and security headers
(``tests/index/test_accel_redirect.py`` runs exactly this)::

    location /_assay_blobs/ {
        internal;
        alias /srv/assay-data/files/;
        etag off;
        add_header ETag $upstream_http_etag;
        add_header X-Content-Type-Options $upstream_http_x_content_type_options;
    }

Other stores (S3, the migration fallback) keep their own streaming and redirect behaviour: the
route sends them down the generic path.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from assay.storage.blobs import BlobStore, FilesystemBlobStore, RangeNotSatisfiable, resolve_range
from assay.web.wire import Prepared

#: Bytes read and sent per ASGI message for a file on disk: large enough that a 20 MB file is
#: 20 reads and 20 socket writes, small enough that the loop is never held long (a read of 1 MiB
#: from the page cache takes well under a millisecond).
CHUNK = 1024 * 1024

#: Files up to this size are kept whole in the cache (wheels and sdists of small projects and
#: nearly every ``.metadata`` file); larger ones are read from disk on each request.
SMALL_FILE = 256 * 1024

#: The ASGI extension (and message type) by which the server sends a file named by its path.
PATHSEND = "http.response.pathsend"

#: Most entries the cache holds, whatever their size (the headers of a file are ~300 bytes).
MAX_ENTRIES = 100_000


@dataclass(slots=True)
class FileEntry:
    """What is known of one servable file under one project serial."""

    project_id: int
    project: str  # normalized name: the key of its serial
    serial: int
    #: PEP 792: a quarantined project's files are not offered for download.
    quarantined: bool
    etag: str
    media_type: str
    #: The name the client should save it as (Content-Disposition), None for ``.metadata``.
    filename: str | None
    #: The name the blob is served under (an object store's presigned URL names it).
    served_name: str
    #: The file on the local filesystem store, else None (S3, the fallback store).
    path: Path | None = None
    size: int = 0
    #: The headers of a whole-file 200 (and, without content-length, of a 304), built once.
    headers: list[tuple[bytes, bytes]] | None = None
    #: The bytes of a small file, once read.
    body: bytes | None = None
    #: The whole 200 as ``index.fastpath`` sends it (with the security headers), and the
    #: ``headers`` and ``body`` it was built from.
    sent: tuple[list[tuple[bytes, bytes]], bytes | None, Prepared] | None = None


class FileCache:
    """An LRU of ``FileEntry`` by (index id, key, cache scope), bounded by the bytes of the
    small-file bodies it holds (setting ``file_cache_bytes``) and by ``MAX_ENTRIES``. Used
    from the event loop only, so it takes no lock."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._data: OrderedDict[tuple[int, str, str], FileEntry] = OrderedDict()

    def get(self, key: tuple[int, str, str]) -> FileEntry | None:
        entry = self._data.get(key)
        if entry is not None:
            self._data.move_to_end(key)
        return entry

    def put(self, key: tuple[int, str, str], entry: FileEntry) -> None:
        old = self._data.pop(key, None)
        if old is not None and old.body is not None:
            self.size -= len(old.body)
        self._data[key] = entry
        if entry.body is not None:
            self.size += len(entry.body)
        while (self.size > self.max_bytes or len(self._data) > MAX_ENTRIES) and self._data:
            _, evicted = self._data.popitem(last=False)
            if evicted.body is not None:
                self.size -= len(evicted.body)

    def keep_body(self, entry: FileEntry, body: bytes) -> None:
        """Keep ``body`` as ``entry``'s (already cached) bytes if the budget allows."""
        if entry.body is None and len(body) <= self.max_bytes:
            entry.body = body
            self.size += len(body)
            while self.size > self.max_bytes and self._data:
                _, evicted = self._data.popitem(last=False)
                if evicted.body is not None:
                    self.size -= len(evicted.body)


def local_path(store: BlobStore, key: str) -> Path | None:
    """The blob's file when the store is a plain directory (the default store); None for any
    other, whose own ``open`` and ``download_url`` then serve it."""
    if isinstance(store, FilesystemBlobStore):
        return store.root / key  # the key was checked (check_key) before it got here
    return None


def whole_headers(entry: FileEntry, cache_control: str) -> list[tuple[bytes, bytes]]:
    """The raw headers of a whole-file 200 of ``entry`` (its ``size`` known)."""
    headers = [
        (b"etag", entry.etag.encode()),
        (b"cache-control", cache_control.encode()),
        (b"accept-ranges", b"bytes"),
        (b"content-type", entry.media_type.encode()),
        (b"content-length", str(entry.size).encode()),
    ]
    if entry.filename is not None:
        headers.append((b"content-disposition", f'attachment; filename="{entry.filename}"'.encode()))
    return headers


def accel_headers(entry: FileEntry, cache_control: str, location: str) -> dict[str, str]:
    """A hand-off to the reverse proxy in front: ``X-Accel-Redirect`` (nginx) names the file in
    its internal location; the proxy sends it and answers Range and conditional requests."""
    headers = {
        "etag": entry.etag,
        "cache-control": cache_control,
        "content-type": entry.media_type,
        "x-accel-redirect": location,
    }
    if entry.filename is not None:
        headers["content-disposition"] = f'attachment; filename="{entry.filename}"'
    return headers


class RawResponse(Response):
    """A response whose raw headers were built beforehand (``FileEntry.headers``): nothing is
    parsed or encoded per request. The body is ``body``, or ``length`` bytes of the open file
    ``fd`` from ``offset`` (closed once sent, or when the client goes away)."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
        *,
        fd: int | None = None,
        offset: int = 0,
        length: int = 0,
        path: Path | None = None,
    ) -> None:
        self.status_code = status
        self.raw_headers = headers
        self.body = body
        self.background: BackgroundTask | None = None
        self._fd = fd
        self._offset = offset
        self._length = length
        #: The whole file's path (not for a range): sent by the server itself where it can.
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fd = self._fd
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if fd is None or scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": self.body})
                return
            if self._path is not None and PATHSEND in scope.get("extensions", {}):
                # The ASGI pathsend extension (granian offers it): the server reads and sends
                # the file itself, off the event loop, with no Python bytes objects per chunk.
                await send({"type": PATHSEND, "path": str(self._path)})
                return
            position, left = self._offset, self._length
            while left:
                # On the loop: the page cache answers this in microseconds per 100 KiB, less
                # than a hand-off to a thread and back would cost.
                chunk = os.pread(fd, min(CHUNK, left), position)
                if not chunk:  # the file shrank under us: it cannot (blobs are immutable)
                    raise OSError(f"short read at {position} of a {self._offset + self._length}-byte range")
                position += len(chunk)
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        finally:
            if fd is not None:
                os.close(fd)


def file_response(
    entry: FileEntry, method: str, byte_range: tuple[int | None, int | None] | None, cache: FileCache
) -> Response:
    """The response for ``entry`` (a file on the local store, not quarantined, headers built):
    the whole file, a range (206) or 416, from the cached bytes or the disk."""
    assert entry.path is not None
    assert entry.headers is not None
    if byte_range is None:
        if entry.body is not None or method == "HEAD":
            return RawResponse(200, entry.headers, entry.body or b"")
        fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
        if entry.size <= SMALL_FILE:
            try:
                body = os.pread(fd, entry.size, 0)
            finally:
                os.close(fd)
            cache.keep_body(entry, body)
            return RawResponse(200, entry.headers, body)
        return RawResponse(200, entry.headers, fd=fd, length=entry.size, path=entry.path)
    # RFC 9110 section 14: one range; the headers of a 206 are built per request (rare: lazy
    # wheel readers without PEP 658 metadata).
    base = [(k, v) for k, v in entry.headers if k != b"content-length"]
    try:
        offset, length = resolve_range(byte_range, entry.size)
    except RangeNotSatisfiable as exc:
        return RawResponse(416, [*base, (b"content-range", f"bytes */{exc.total}".encode()), (b"content-length", b"0")])
    end = offset + length - 1
    headers = [
        *base,
        (b"content-length", str(length).encode()),
        (b"content-range", f"bytes {offset}-{end}/{entry.size}".encode()),
    ]
    if entry.body is not None or method == "HEAD":
        return RawResponse(206, headers, (entry.body or b"")[offset : offset + length])
    fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
    return RawResponse(206, headers, fd=fd, offset=offset, length=length)
