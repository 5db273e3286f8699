"""A static PEP 740 index for client tests: real HTTP on 127.0.0.1, everything in memory.

This is **test support code**. ``StaticIndex`` serves what a client of a PEP 740 index reads:

* ``/simple/<project>/``: the PEP 691 JSON project page (``application/vnd.pypi.simple.v1+json``,
  API version 1.3) with each file's ``url``, ``hashes``, ``size`` and ``provenance``
  (PEP 740: a URL, ``null``, or, for an index older than API 1.3, no key at all), with an ETag;
* ``/files/<filename>``: the distribution files;
* ``/integrity/<project>/<version>/<filename>/provenance``: PyPI's Integrity API route, with
  the statuses PyPI documents (200, 404 ``No provenance available``, 403 when attestations
  are disabled) and conditional requests (``ETag`` / ``Last-Modified``, 304);
* hostile endpoints for negative tests, used by pointing a file's provenance URL (or a project
  page) at them: ``/hostile/redirect-loop``, ``/hostile/endless`` (an infinite body, no
  length), ``/hostile/huge`` (declares 10 GB, then streams), ``/hostile/hang`` (never
  answers), ``/hostile/flaky/<n>/...`` (503 for the first ``n`` requests, then a redirect to
  the real path), ``/hostile/not-json``, ``/hostile/html`` (an HTML page).

It is uvicorn serving a small Starlette app in a daemon thread on a free port; tests change
its content while it runs (``publish``, ``set_provenance``, ``attestations_disabled``) and read
``requests`` (method, path, request headers, status) to see what a client did.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType
from typing import Any

import uvicorn
from packaging.utils import canonicalize_name
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
INTEGRITY_JSON = "application/vnd.pypi.integrity.v1+json"

#: Provenance modes of a file on a project page.
URL, NULL, NO_KEY = "url", "null", "no-key"


@dataclass
class IndexFile:
    project: str
    version: str
    filename: str
    content: bytes
    #: The provenance document's bytes (usually JSON), or None for "no provenance".
    provenance: bytes | None = None
    #: How the page lists the provenance: its URL, ``null``, or no key (API < 1.3).
    mode: str = URL
    #: Serve this URL in the page instead of the Integrity API route (hostile tests).
    provenance_url: str | None = None
    #: The sha256 the page lists (default: the content's); set to lie.
    listed_sha256: str | None = None
    modified: float = field(default_factory=time.time)
    #: PEP 700 ``upload-time`` to list (ISO 8601 text), or None for no key.
    upload_time: str | None = None
    #: Send this many bytes of the file, then stall (until the client goes or the server
    #: stops): a download a test can interrupt halfway.
    stall_after: int | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    headers: dict[str, str]
    status: int
    #: The client's source port: one per TCP connection.
    client_port: int


def provenance_document(bundles: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> bytes:
    """A PEP 740 provenance object from ``(publisher block, [attestation JSON])`` pairs."""
    return json.dumps(
        {
            "version": 1,
            "attestation_bundles": [
                {"publisher": publisher, "attestations": attestations} for publisher, attestations in bundles
            ],
        }
    ).encode()


class StaticIndex:
    def __init__(self) -> None:
        self.files: dict[str, IndexFile] = {}
        #: Projects whose page is replaced: "html", "missing" (404) or a hostile path.
        self.page_override: dict[str, str] = {}
        self.attestations_disabled = False
        self.requests: list[LoggedRequest] = []
        #: Bytes the endless/huge hostile bodies have sent so far.
        self.hostile_bytes_sent = 0
        self._flaky: dict[str, int] = {}
        #: A transparency log (issue 13), if one is set: ``/log/<path>`` bodies, and per
        #: filename its C2SP tlog-proof receipt (``/files/<filename>.tlog-proof``, listed on
        #: the page as ``_assay_log_receipt``, as assay serves it).
        self.log_files: dict[str, bytes] = {}
        self.receipts: dict[str, bytes] = {}
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    # -- content ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simple(self) -> str:
        return f"{self.url}/simple/"

    def publish(
        self,
        project: str,
        version: str,
        filename: str,
        content: bytes,
        provenance: bytes | None = None,
        *,
        mode: str = URL,
    ) -> IndexFile:
        entry = IndexFile(canonicalize_name(project), version, filename, content, provenance, mode)
        self.files[filename] = entry
        return entry

    def set_provenance(self, filename: str, provenance: bytes | None) -> None:
        entry = self.files[filename]
        entry.provenance = provenance
        entry.modified = time.time()

    def file_url(self, filename: str) -> str:
        return f"{self.url}/files/{filename}"

    def provenance_path(self, entry: IndexFile) -> str:
        return f"/integrity/{entry.project}/{entry.version}/{entry.filename}/provenance"

    def requests_to(self, path_part: str) -> list[LoggedRequest]:
        return [r for r in self.requests if path_part in r.path]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> StaticIndex:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this. Without it (asyncio loop, pre-bound socket) every
        # keep-alive request after the first waits ~40 ms on Nagle + delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            http="h11",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"static-index-{self.port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError("the static index did not start")
            time.sleep(0.01)
        self._server, self._thread, self._socket = server, thread, sock
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> StaticIndex:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the app ------------------------------------------------------------------------------

    def _app(self) -> ASGIApp:
        app = Starlette(
            routes=[
                Route("/simple/{project}/", self._page),
                Route("/files/{filename}.tlog-proof", self._receipt),
                Route("/files/{filename}", self._file),
                Route("/log/{path:path}", self._log),
                Route("/integrity/{project}/{version}/{filename}/provenance", self._provenance),
                Route("/hostile/{kind}", self._hostile),
                Route("/hostile/flaky/{failures:int}/{rest:path}", self._flaky_route),
            ]
        )

        async def logged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = [0]

            async def send_logged(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
                    client = scope.get("client") or ("", 0)
                    self.requests.append(
                        LoggedRequest(scope["method"], scope["path"], headers, message["status"], client[1])
                    )
                await send(message)

            await app(scope, receive, send_logged)

        return logged

    def _page_json(self, project: str) -> bytes:
        files = []
        for entry in self.files.values():
            if entry.project != project:
                continue
            item: dict[str, Any] = {
                "filename": entry.filename,
                "url": f"/files/{entry.filename}",  # PEP 691 allows relative URLs
                "hashes": {"sha256": entry.listed_sha256 or entry.sha256},
                "size": len(entry.content),
            }
            if entry.upload_time is not None:
                item["upload-time"] = entry.upload_time
            if entry.mode == URL:
                # Like PyPI: the Integrity API URL (which answers 404 when there is none).
                item["provenance"] = entry.provenance_url or f"{self.url}{self.provenance_path(entry)}"
            elif entry.mode == NULL:
                item["provenance"] = None
            if entry.filename in self.receipts:
                item["_assay_log_receipt"] = f"/files/{entry.filename}.tlog-proof"
            files.append(item)
        doc = {"meta": {"api-version": "1.3"}, "name": project, "versions": [], "files": files}
        return json.dumps(doc).encode()

    def _page_html(self, project: str) -> str:
        """The PEP 503 form of the page (for clients' HTML fallback): hash fragments, PEP 740
        ``data-provenance``, no PEP 700 fields (HTML has none)."""
        anchors = []
        for entry in self.files.values():
            if entry.project != project:
                continue
            sha = entry.listed_sha256 or entry.sha256
            extra = ""
            if entry.mode == URL:
                extra = f' data-provenance="{entry.provenance_url or self.url + self.provenance_path(entry)}"'
            anchors.append(f'<a href="../../files/{entry.filename}#sha256={sha}"{extra}>{entry.filename}</a><br>')
        return (
            '<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.3"></head><body>'
            + "\n".join(anchors)
            + "</body></html>"
        )

    async def _page(self, request: Request) -> Response:
        project = canonicalize_name(request.path_params["project"])
        override = self.page_override.get(project)
        if override == "html":
            return Response("<html><body><a href='/x'>x</a></body></html>", media_type="text/html")
        if override == "html-page":
            return Response(self._page_html(project), media_type="text/html")
        if override == "missing" or not any(e.project == project for e in self.files.values()):
            return JSONResponse({"message": "not found"}, status_code=404)
        if override is not None:
            return Response(status_code=302, headers={"Location": override})
        body = self._page_json(project)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type=SIMPLE_JSON, headers={"ETag": etag})

    async def _receipt(self, request: Request) -> Response:
        body = self.receipts.get(request.path_params["filename"])
        if body is None:
            return Response(status_code=404)
        return Response(body, media_type="text/plain; charset=utf-8")

    async def _log(self, request: Request) -> Response:
        body = self.log_files.get(request.path_params["path"])
        if body is None:
            return Response(status_code=404)
        return Response(body, media_type="application/octet-stream")

    async def _file(self, request: Request) -> Response:
        entry = self.files.get(request.path_params["filename"])
        if entry is None:
            return Response(status_code=404)
        if entry.stall_after is not None:
            return StreamingResponse(
                self._stalled(entry.content, entry.stall_after),
                media_type="application/octet-stream",
                headers={"Content-Length": str(len(entry.content))},
            )
        return Response(entry.content, media_type="application/octet-stream")

    async def _stalled(self, content: bytes, after: int) -> AsyncIterator[bytes]:
        yield content[:after]
        while not self._stopping.is_set():
            await asyncio.sleep(0.05)

    async def _provenance(self, request: Request) -> Response:
        # PyPI's Integrity API (see research/attestations.md §2).
        if self.attestations_disabled:
            return JSONResponse({"message": "Attestations temporarily disabled"}, status_code=403)
        entry = self.files.get(request.path_params["filename"])
        if entry is None or entry.provenance is None:
            name = request.path_params["filename"]
            return JSONResponse({"message": f"No provenance available for {name}"}, status_code=404)
        etag = '"' + hashlib.sha256(entry.provenance).hexdigest()[:32] + '"'
        modified = formatdate(entry.modified, usegmt=True)
        headers = {"ETag": etag, "Last-Modified": modified}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(entry.provenance, media_type=INTEGRITY_JSON, headers=headers)

    async def _hostile(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind == "redirect-loop":
            return Response(status_code=302, headers={"Location": "/hostile/redirect-loop-2"})
        if kind == "redirect-loop-2":
            return Response(status_code=307, headers={"Location": f"{self.url}/hostile/redirect-loop"})
        if kind == "endless":
            return StreamingResponse(self._zeros(), media_type="application/json")
        if kind == "huge":
            headers = {"Content-Length": str(10 * 1024**3)}
            return StreamingResponse(self._zeros(), media_type="application/json", headers=headers)
        if kind == "hang":
            while not self._stopping.is_set() and not await request.is_disconnected():
                await asyncio.sleep(0.05)
            return Response(status_code=504)
        if kind == "not-json":
            return Response(b"<html>provenance?</html>", media_type="application/json")
        if kind == "wrong-shape":
            return JSONResponse({"version": 1, "attestation_bundles": [{"publisher": {}}]})
        if kind == "server-error":
            return Response(status_code=500)
        if kind == "teapot":
            return Response(status_code=418)
        return Response(status_code=404)

    async def _flaky_route(self, request: Request) -> Response:
        failures = request.path_params["failures"]
        rest = "/" + request.path_params["rest"]
        key = request.url.path
        seen = self._flaky.get(key, 0)
        self._flaky[key] = seen + 1
        if seen < failures:
            return Response(status_code=503, headers={"Retry-After": "0"})
        return Response(status_code=307, headers={"Location": rest})

    async def _zeros(self) -> AsyncIterator[bytes]:
        chunk = b" " * 65536
        while not self._stopping.is_set():
            self.hostile_bytes_sent += len(chunk)
            yield chunk
            # Let the event loop run: Starlette stops the stream when the client disconnects.
            await asyncio.sleep(0)
