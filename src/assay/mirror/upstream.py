"""Upstream project pages: fetched (PEP 691 JSON preferred, PEP 503 HTML fallback), parsed
into one typed model that carries every field a simple page can (PEP 592, 658/714, 700, 740,
792), and revalidated with ETag / Last-Modified (RFC 9110 §13).

The parsed page is what the database keeps (``MirrorPage.page``), so every worker reads the
same page and a restart does not refetch it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assay import mediatypes, untrusted_json

#: PEP 691 content negotiation: JSON first; the HTML forms (PEP 503 ``text/html`` last) for
#: upstreams that only serve HTML (a static mirror, an older devpi).
ACCEPT = f"{mediatypes.SIMPLE_JSON_V1}, {mediatypes.SIMPLE_HTML_V1};q=0.2, {mediatypes.TEXT_HTML};q=0.01"

#: The largest project page accepted (PyPI's largest pages are a few MiB of JSON).
MAX_PAGE_BYTES = 32 * 1024 * 1024


class UpstreamError(Exception):
    """Upstream could not give a usable page: unreachable, an error status, or a page that
    cannot be read. The message says which."""


class UpstreamFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    filename: str
    #: Absolute, without fragment.
    url: str
    #: PEP 503 / 691: hex digests by hashlib name.
    hashes: dict[str, str]
    requires_python: str | None = None
    #: PEP 592: False, True, or the reason.
    yanked: bool | str = False
    #: PEP 700 (JSON only): when upstream received the file; None when not given.
    upload_time: dt.datetime | None = None
    #: PEP 700 (JSON only).
    size: int | None = None
    #: PEP 658 / 714: False (none), True (present, no hash given) or its hashes.
    core_metadata: bool | dict[str, str] = False
    #: PEP 740: absolute URL of the provenance object, or None.
    provenance: str | None = None

    @property
    def sha256(self) -> str | None:
        value = self.hashes.get("sha256")
        return value.lower() if value else None

    @property
    def metadata_sha256(self) -> str | None:
        return self.core_metadata.get("sha256") if isinstance(self.core_metadata, dict) else None

    @property
    def has_metadata(self) -> bool:
        return self.core_metadata is not False


class UpstreamPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    files: tuple[UpstreamFile, ...]
    #: PEP 700 ``versions`` (JSON only; empty otherwise).
    versions: tuple[str, ...] = ()
    #: PEP 792 project status and reason.
    status: str = "active"
    status_reason: str | None = None
    #: PEP 629 repository version the page declared.
    api_version: str | None = None
    #: "json" or "html": which form upstream answered with.
    form: str = "json"

    def file(self, filename: str) -> UpstreamFile | None:
        return next((f for f in self.files if f.filename == filename), None)


# ---- PEP 691 JSON ------------------------------------------------------------------------


class _JSONFile(BaseModel):
    # PEP 691: clients ignore keys they do not know.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    filename: str
    url: str
    hashes: dict[str, str]
    requires_python: str | None = Field(default=None, alias="requires-python")
    yanked: bool | str = False
    upload_time: dt.datetime | None = Field(default=None, alias="upload-time")
    size: int | None = Field(default=None, ge=0)
    core_metadata: bool | dict[str, str] | None = Field(default=None, alias="core-metadata")
    # PEP 658's original key, still sent by older servers (PEP 714 renamed it).
    dist_info_metadata: bool | dict[str, str] | None = Field(default=None, alias="dist-info-metadata")
    provenance: str | None = None


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str = "active"
    reason: str | None = None


class _JSONPage(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    meta: dict[str, Any] = Field(default_factory=dict)
    name: str
    files: list[_JSONFile]
    versions: list[str] = Field(default_factory=list)
    project_status: _Status | None = Field(default=None, alias="project-status")


def parse_json(body: bytes, page_url: str) -> UpstreamPage:
    try:
        doc = _JSONPage.model_validate(untrusted_json.loads(body))
    except ValueError as exc:  # JSON errors and pydantic's ValidationError alike
        raise UpstreamError(f"upstream's JSON project page is not a PEP 691 page: {_short(exc)}") from None
    files = []
    for f in doc.files:
        metadata = f.core_metadata if f.core_metadata is not None else f.dist_info_metadata
        # PEP 691: an empty-string yank reason is equivalent to true.
        yanked: bool | str = True if f.yanked == "" else f.yanked
        files.append(
            UpstreamFile(
                filename=f.filename,
                url=urldefrag(urljoin(page_url, f.url)).url,
                hashes={k.lower(): v.lower() for k, v in f.hashes.items()},
                requires_python=f.requires_python,
                yanked=yanked,
                upload_time=f.upload_time.astimezone(dt.UTC) if f.upload_time else None,
                size=f.size,
                core_metadata=metadata or False,
                provenance=urljoin(page_url, f.provenance) if f.provenance else None,
            )
        )
    status = doc.project_status or _Status()
    api = doc.meta.get("api-version")
    return UpstreamPage(
        name=doc.name,
        files=tuple(files),
        versions=tuple(doc.versions),
        status=status.status,
        status_reason=status.reason,
        api_version=api if isinstance(api, str) else None,
        form="json",
    )


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)


# ---- PEP 503 HTML ------------------------------------------------------------------------


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], list[str]]] = []
        self.meta: dict[str, str] = {}
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._text = []
            self.anchors.append((dict(attrs), self._text))
        elif tag == "meta":
            values = dict(attrs)
            name, content = values.get("name"), values.get("content")
            if name and content is not None:
                self.meta[name] = content

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _hash_fragment(fragment: str) -> dict[str, str]:
    # PEP 503: the URL's fragment is <hashname>=<hexdigest>.
    name, sep, value = fragment.partition("=")
    return {name.lower(): value.lower()} if sep and value else {}


def _metadata_attr(value: str | None) -> bool | dict[str, str]:
    if value is None:
        return False
    # PEP 658 / 714: "true" or "<hashname>=<hexdigest>".
    hashes = _hash_fragment(value)
    return hashes or value.strip().lower() == "true"


def parse_html(body: bytes, page_url: str, project: str) -> UpstreamPage:
    parser = _Anchors()
    try:
        parser.feed(body.decode("utf-8"))
        parser.close()
    except UnicodeDecodeError as exc:
        raise UpstreamError(f"upstream's HTML project page is not UTF-8: {exc}") from None
    files = []
    for attrs, text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(page_url, href))
        filename = "".join(text).strip() or url.rsplit("/", 1)[-1]
        yanked: bool | str = False
        if "data-yanked" in attrs:
            yanked = attrs["data-yanked"] or True
        metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        provenance = attrs.get("data-provenance")
        files.append(
            UpstreamFile(
                filename=filename,
                url=url,
                hashes=_hash_fragment(fragment),
                requires_python=attrs.get("data-requires-python") or None,
                yanked=yanked,
                core_metadata=_metadata_attr(metadata),
                provenance=urljoin(page_url, provenance) if provenance else None,
            )
        )
    return UpstreamPage(
        name=project,
        files=tuple(files),
        status=parser.meta.get("pypi:project-status", "active"),
        status_reason=parser.meta.get("pypi:project-status-reason"),
        api_version=parser.meta.get("pypi:repository-version"),
        form="html",
    )


# ---- fetching ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """What one request for a page gave: a new page (``page``; None for upstream's 404),
    or ``not_modified`` (304: the kept page still stands)."""

    page: UpstreamPage | None
    etag: str | None
    last_modified: str | None
    not_modified: bool = False


def page_url(upstream: str, project: str) -> str:
    # PEP 503: /<normalized name>/ below the simple index's root.
    return urljoin(upstream if upstream.endswith("/") else upstream + "/", f"{project}/")


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str
    url: str
    etag: str | None
    last_modified: str | None


async def _conditional_get(
    client: httpx.AsyncClient, url: str, *, etag: str | None, last_modified: str | None, limit: int, what: str
) -> _Answer:
    """GET ``url`` (conditionally when validators are known), at most ``limit`` bytes of body.
    ``UpstreamError`` when upstream is unreachable, answers anything but 200 / 304 / 404, or
    sends more than ``limit``."""
    headers = {"Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
            if response.status_code in (304, 404):
                return _Answer(response.status_code, b"", "", str(response.url), None, None)
            if response.status_code != 200:
                raise UpstreamError(f"upstream answered {response.status_code} for {url}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise UpstreamError(f"upstream's {what} {url} is larger than {limit} bytes")
                chunks.append(chunk)
            return _Answer(
                200,
                b"".join(chunks),
                response.headers.get("content-type", "").split(";")[0].strip().lower(),
                str(response.url),
                response.headers.get("etag"),
                response.headers.get("last-modified"),
            )
    except httpx.HTTPError as exc:
        raise UpstreamError(f"upstream {url} is unreachable: {type(exc).__name__}: {exc}") from None


def _is_json(ctype: str) -> bool:
    return ctype.endswith("+json") or ctype == mediatypes.JSON


def _is_html(ctype: str) -> bool:
    return ctype in (mediatypes.SIMPLE_HTML_V1, mediatypes.TEXT_HTML) or ctype.endswith("+html")


async def fetch_page(
    client: httpx.AsyncClient,
    upstream: str,
    project: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """GET ``project``'s page, conditionally when validators are known. ``UpstreamError`` when
    upstream is unreachable, answers anything but 200 / 304 / 404, or sends an unusable page."""
    url = page_url(upstream, project)
    got = await _conditional_get(client, url, etag=etag, last_modified=last_modified, limit=MAX_PAGE_BYTES, what="page")
    if got.status == 304:
        return Fetched(None, etag, last_modified, not_modified=True)
    if got.status == 404:
        return Fetched(None, None, None)
    if _is_json(got.content_type):
        page = parse_json(got.body, got.url)
    elif _is_html(got.content_type):
        page = parse_html(got.body, got.url, project)
    else:
        raise UpstreamError(f"upstream's page {url} has content type {got.content_type!r}, not a simple page")
    return Fetched(page, got.etag, got.last_modified)


# ---- the project list (PEP 503 / 691 root page) ----------------------------------------------

#: The largest project list accepted (the public index's is some tens of MiB, JSON or HTML).
MAX_LIST_BYTES = 256 * 1024 * 1024


class UpstreamList(BaseModel):
    """Upstream's project list: each project's name as upstream spells it."""

    model_config = ConfigDict(frozen=True)

    names: tuple[str, ...]


class _JSONListEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class _JSONList(BaseModel):
    model_config = ConfigDict(extra="ignore")
    projects: list[_JSONListEntry]


def parse_list_json(body: bytes) -> UpstreamList:
    try:
        doc = _JSONList.model_validate(untrusted_json.loads(body))
    except ValueError as exc:
        raise UpstreamError(f"upstream's JSON project list is not a PEP 691 list: {_short(exc)}") from None
    return UpstreamList(names=tuple(p.name for p in doc.projects))


def parse_list_html(body: bytes) -> UpstreamList:
    # PEP 503: the root page is one anchor per project, its text the project's name.
    parser = _Anchors()
    try:
        parser.feed(body.decode("utf-8"))
        parser.close()
    except UnicodeDecodeError as exc:
        raise UpstreamError(f"upstream's HTML project list is not UTF-8: {exc}") from None
    return UpstreamList(names=tuple(name for _, text in parser.anchors if (name := "".join(text).strip())))


@dataclass(frozen=True)
class FetchedList:
    """One request for the project list: a new list (upstream's 404: an empty one), or
    ``not_modified``."""

    names: UpstreamList | None
    etag: str | None
    last_modified: str | None
    not_modified: bool = False


async def fetch_list(
    client: httpx.AsyncClient, upstream: str, *, etag: str | None = None, last_modified: str | None = None
) -> FetchedList:
    url = upstream if upstream.endswith("/") else upstream + "/"
    got = await _conditional_get(
        client, url, etag=etag, last_modified=last_modified, limit=MAX_LIST_BYTES, what="project list"
    )
    if got.status == 304:
        return FetchedList(None, etag, last_modified, not_modified=True)
    if got.status == 404:  # an upstream without a root page (a static mirror): no names to list
        return FetchedList(UpstreamList(names=()), None, None)
    if _is_json(got.content_type):
        names = parse_list_json(got.body)
    elif _is_html(got.content_type):
        names = parse_list_html(got.body)
    else:
        raise UpstreamError(f"upstream's project list {url} has content type {got.content_type!r}")
    return FetchedList(names, got.etag, got.last_modified)
