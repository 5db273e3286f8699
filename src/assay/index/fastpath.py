"""The read path's fast lane (issue 17, item 3): cache hits answered in front of Starlette.

A simple page or a file that this process has already answered once is, on the next request,
a handful of dictionary lookups; going through the whole stack for it (``SecurityHeaders`` →
``KeepConnection`` → Starlette's error middleware → allowed hosts → ``BodyLimits`` → the
exception middleware → the router → the endpoint, each wrapping ``send``) cost more than the
lookups themselves (``bench/index/layers.py``). ``ReadFastPath`` is one pure-ASGI layer in
front of all of them that answers exactly those hits and hands everything else, unchanged, to
the full stack. What the layers would have done to a hit is folded into it:

* **Security headers**: each cached page's and file's raw header list is built once, by the
  same Starlette ``Response`` and ``security.with_security_headers`` the full stack uses, so
  the bytes on the wire are identical (``tests/index/test_fast_path.py`` compares them).
* **Host check**: the same ``HostPolicy`` as ``web.hosts.AllowedHosts``; a refused host goes
  to the full stack, which answers the 400.
* **Body limits**: a GET or HEAD with a body (``content-length`` or ``transfer-encoding``) goes
  to the full stack, so ``BodyLimits`` sees it as before.
* **Errors**: nothing is sent before every lookup has succeeded; any exception in them hands
  the request to the full stack, which repeats the work and answers its error (503, 500) as
  tested. Failures while sending end the connection, as they did below the error middleware
  once the response had started.

Only the plainest requests take the lane: GET or HEAD, no query string, no ``root_path``, no
``If-None-Match`` / ``Range`` / ``If-Range`` (conditional and range answers stay in the
routes), a public index (a private one checks a token), a canonical project name (else the
PEP 503 redirect), and a hit in every cache the route would consult: the serial known without
a query (``Serials.known``), the rendered page (``RenderCache``) or the file's entry with its
headers (``FileCache``). A miss of any is the route's job, which fills the caches for the next
request. Which requests took the lane is counted (``hits``), for the tests and benchmarks.

Under assay's uvicorn protocol the same decision is made one level lower still: as soon as a
request's headers are parsed, ``web.protocol`` asks ``wire_answer`` and writes the hit to the
connection itself, a large file by ``sendfile(2)`` (``web.wire``; counted in ``wire_hits``).
Each page's and file's answer is therefore prepared once as a ``web.wire.Prepared``: the raw
headers for this ASGI path, their header block and the answers on the wire, so a hit allocates
nothing. Under another server (granian) or in process, the ASGI lane here answers as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from packaging.utils import InvalidName, canonicalize_name
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from assay.index import cdn
from assay.index.filesend import SMALL_FILE, FileEntry, RawResponse
from assay.index.negotiate import NotAcceptable, negotiate
from assay.index.pages import Rendered, index_key, project_key
from assay.index.paths import stored_key
from assay.index.serials import MISS
from assay.index.services import IndexServices
from assay.indexes import IndexRef
from assay.log.proof import SUFFIX as PROOF_SUFFIX
from assay.storage.models import DEFAULT_INDEX_NAME
from assay.web.hosts import HostPolicy
from assay.web.security import with_security_headers
from assay.web.urls import scope_base_url
from assay.web.wire import Prepared, WireAnswer

#: Request headers that make a request the routes' (conditional, range, a body).
_ROUTE_HEADERS = frozenset({b"if-none-match", b"range", b"if-range", b"content-length", b"transfer-encoding"})

#: Most pages whose prepared headers are kept (each a few hundred bytes); beyond, all are dropped.
MAX_PAGE_HEADERS = 50_000

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class _Page:
    """A page's prepared answer and the rendered page it was built from."""

    rendered: Rendered
    prepared: Prepared


@dataclass(slots=True, frozen=True)
class _Decided:
    """How a page request was decided: under which index and serial, for which page."""

    index: IndexRef
    serial_key: tuple[object, ...]
    serial: object  # what ``Serials.known(serial_key)`` answered
    page_key: tuple[object, ...]
    page: _Page


#: A hit: the prepared answer, and for a large file (sent from disk) its entry.
_Hit = tuple[Prepared, FileEntry | None]


class ReadFastPath:
    """Pure ASGI, in front of the whole application (see the module docstring)."""

    def __init__(self, app: ASGIApp, svc: IndexServices, root_segments: frozenset[str]) -> None:
        self.app = app
        self.svc = svc
        self.policy = HostPolicy.from_settings(svc.settings)
        #: First path segments the site root's own routes claim: never an index's name here.
        self.root_segments = root_segments
        #: Requests answered by the lane, and of them those written by ``web.protocol`` itself.
        self.hits = 0
        self.wire_hits = 0
        self._pages: dict[tuple[object, ...], _Page] = {}
        self._memo: dict[tuple[object, ...], _Decided] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and not scope.get("query_string"):
            try:
                hit = self._answer(scope, large=True)
                response = None if hit is None else _response(*hit)
            except Exception:  # the full stack repeats the work and answers the error as tested
                response = None
            if response is not None:
                self.hits += 1
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def wire_answer(self, scope: Scope, *, sendfile: bool) -> WireAnswer | None:
        """The same hit for ``web.protocol`` to write to the connection itself (``web.wire``):
        a large file only when it may be sent by descriptor (``sendfile``)."""
        hit = self._answer(scope, large=sendfile)
        if hit is None:
            return None
        prepared, large = hit
        if large is None:
            answer = prepared.head_only if scope["method"] == "HEAD" else prepared.get
        else:
            assert large.path is not None
            fd = os.open(large.path, os.O_RDONLY | os.O_CLOEXEC)  # gone: the route answers the 500
            answer = WireAnswer(prepared.head, fd=fd, length=large.size)
        self.hits += 1
        self.wire_hits += 1
        return answer

    # -- deciding --
    def _answer(self, scope: Scope, *, large: bool) -> _Hit | None:
        if scope.get("root_path"):
            return None
        hosts: list[bytes] = []
        accept: str | None = None
        for name, value in scope["headers"]:
            if name == b"host":
                hosts.append(value)
            elif name == b"accept":
                if accept is None:
                    accept = value.decode("latin-1")
            elif name in _ROUTE_HEADERS:
                return None
        if self.policy is not None and self.policy.refusal(hosts, scope.get("server")) is not None:
            return None
        path: str = scope["path"]
        index, rest = self._index(path)
        if index is None or index.is_private(self.svc.settings.private):
            return None
        if rest.startswith("/simple/"):
            return self._page(scope, index, rest, hosts, accept)
        if rest.startswith("/files/"):
            return self._file(index, rest.removeprefix("/files/"), scope["method"], large)
        return None

    def _index(self, path: str) -> tuple[IndexRef | None, str]:
        """The index a path is for (as the route list would decide it) and the path below it."""
        if path.startswith("/simple/") or path.startswith("/files/"):
            return self.svc.indexes.default(), path
        name, slash, rest = path[1:].partition("/")
        if not slash or name in self.root_segments or name == DEFAULT_INDEX_NAME:
            return None, ""
        return self.svc.indexes.by_name(name), "/" + rest

    def _page(
        self, scope: Scope, index: IndexRef, rest: str, hosts: list[bytes], accept: str | None
    ) -> _Hit | None:
        svc = self.svc
        # What a request like this one was decided to last time: it still holds while its
        # index, its serial and its rendered page are the ones it was decided under.
        memo_key = (index.id, rest, accept, scope["scheme"], *hosts)
        memo = self._memo.get(memo_key)
        if (
            memo is not None
            and memo.index is index
            and svc.serials.known(memo.serial_key) == memo.serial
            and svc.pages.cache.get(memo.page_key) is memo.page.rendered
        ):
            return memo.page.prepared, None
        try:
            choice = negotiate(accept, None)
        except NotAcceptable:
            return None
        serial_key: tuple[object, ...]
        if rest == "/simple/":
            serial_key = ("index", index.id)
            known = serial = svc.serials.known(serial_key)
            if serial is MISS:
                return None
            page_key = index_key(index.id, serial, choice.format)  # type: ignore[arg-type]
            keys = cdn.listing_keys(index.name)
        else:
            raw, slash, tail = rest.removeprefix("/simple/").partition("/")
            if not slash or tail or not raw:
                return None
            try:
                normalized = canonicalize_name(raw, validate=True)
            except InvalidName:
                return None
            if normalized != raw:
                return None  # the PEP 503 redirect
            serial_key = ("project", index.id, normalized)
            known = head = svc.serials.known(serial_key)
            if not isinstance(head, tuple):
                return None  # MISS (not known here), or None: a 404 (a mirror index may serve it)
            project_id, serial = head
            page_key = project_key(project_id, serial, choice.format, self._base(scope, hosts) + index.prefix)
            keys = cdn.project_keys(normalized, index.name)
        rendered = svc.pages.cache.get(page_key)
        if rendered is None:
            return None
        prepared_key = (*page_key, choice.content_type, keys)
        page = self._pages.get(prepared_key)
        if page is None or page.rendered is not rendered:
            headers = {
                "etag": rendered.etag,
                "vary": "Accept, Accept-Encoding",
                **cdn.cache_headers(svc.settings, keys, private=False),
            }
            # Built by the very Response the route answers with: the same headers, in order.
            raw_headers = Response(rendered.body, media_type=choice.content_type, headers=headers).raw_headers
            page = _Page(rendered, Prepared.of(with_security_headers(raw_headers), rendered.body))
            if len(self._pages) >= MAX_PAGE_HEADERS:
                self._pages.clear()
            self._pages[prepared_key] = page
        if len(self._memo) >= MAX_PAGE_HEADERS:
            self._memo.clear()
        self._memo[memo_key] = _Decided(index, serial_key, known, page_key, page)
        return page.prepared, None

    def _base(self, scope: Scope, hosts: list[bytes]) -> str:
        """``web.urls.base_url`` from the scope (the page cache is keyed by it)."""
        return scope_base_url(self.svc.settings, scope, hosts[0].decode("latin-1") if hosts else None)

    def _file(self, index: IndexRef, public: str, method: str, large: bool) -> _Hit | None:
        # Routes before /files/{key:path} in the route list: transparency-log receipts and
        # mirrored files.
        if public.endswith(PROOF_SUFFIX) or public.startswith("mirror/"):
            return None
        svc = self.svc
        if svc.settings.accel_redirect_prefix:
            return None
        # No ``check_key`` here: the route puts an entry in the cache only after its key passed
        # it, so a key found there is a checked one (and any other is the route's to refuse).
        entry = svc.files.get((index.id, stored_key(index, public), "public"))
        if entry is None or entry.quarantined or entry.path is None or entry.headers is None:
            return None
        if svc.serials.known(("project", index.id, entry.project)) != (entry.project_id, entry.serial):
            return None  # changed since, or not known without a query: the route decides
        prepared = _prepared(entry)
        if entry.body is not None or method == "HEAD":
            return prepared, None
        if entry.size <= SMALL_FILE or not large:
            return None  # not read yet (the route reads it and keeps the bytes), or not by fd
        return prepared, entry


def _response(prepared: Prepared, large: FileEntry | None) -> RawResponse:
    """The ASGI answer of a hit: from memory, or a large file opened now (a file gone from the
    disk raises here, and the route answers its 500)."""
    if large is None:
        return RawResponse(200, prepared.headers, prepared.body)
    assert large.path is not None
    fd = os.open(large.path, os.O_RDONLY | os.O_CLOEXEC)
    return RawResponse(200, prepared.headers, fd=fd, length=large.size, path=large.path)


def _prepared(entry: FileEntry) -> Prepared:
    """The file's whole 200 with the security headers (and its bytes once kept), built once
    per entry and again once the bytes are kept."""
    assert entry.headers is not None
    sent = entry.sent
    if sent is None or sent[0] is not entry.headers or sent[1] is not entry.body:
        prepared = Prepared.of(with_security_headers(entry.headers), entry.body or b"")
        sent = entry.sent = (entry.headers, entry.body, prepared)
    return sent[2]


def root_segments(paths: list[str]) -> frozenset[str]:
    """The first path segments of the site root's routes (``/simple/`` → ``simple``)."""
    return frozenset(p.lstrip("/").split("/", 1)[0] for p in paths if not p.startswith("/{"))
