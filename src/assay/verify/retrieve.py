"""Finding a file's provenance on its index (PEP 740), through the cache.

Online: the project's JSON simple page (PEP 691) gives each file's ``provenance`` URL; an index
whose page has no ``provenance`` key at all (API < 1.3) is asked at the Integrity API path
instead. A cached provenance is revalidated with a conditional request. Statuses mean what
PyPI's Integrity API documents: 200 provenance, 404 none, 403 attestations disabled (unknown).

Offline: the cache alone, and no request of any kind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from packaging.utils import parse_sdist_filename, parse_wheel_filename

from assay import mediatypes
from assay.verify.cache import DiskCache, Entry
from assay.verify.errors import FetchError
from assay.verify.files import LockedFile
from assay.verify.indexes import integrity_url, project_page_url, redact
from assay.verify.simple import (
    SIMPLE_JSON,
    PageError,
    ProjectPage,
    is_json_page,
    parse_project_page,
)

if TYPE_CHECKING:
    from assay.verify.fetch import Http  # httpx, which an --offline run never imports

MAX_PROVENANCE = 10 << 20  # 10 MiB
MAX_PAGE = 50 << 20
#: PyPI's Integrity API media type, with plain JSON accepted (a 406 otherwise).
INTEGRITY_ACCEPT = mediatypes.INTEGRITY_ACCEPT


@dataclass(frozen=True)
class Found:
    body: bytes
    url: str
    #: "fetched", "revalidated" (304) or "cached" (offline).
    how: str


@dataclass(frozen=True)
class NoProvenance:
    reason: str
    #: The cache held provenance for this file and the index no longer serves it.
    disappeared: bool = False


@dataclass(frozen=True)
class Unknown:
    """The index refused to say (HTTP 403: PyPI's "attestations temporarily disabled")."""

    reason: str


@dataclass(frozen=True)
class Unavailable:
    """The lookup itself failed: network, a broken page, a file the index does not list, a
    cache miss offline. Never a reason to call a file verified."""

    reason: str


Retrieval = Found | NoProvenance | Unknown | Unavailable


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _version_of(file: LockedFile, filename: str) -> str:
    if file.version:
        return file.version
    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[1])
    return str(parse_sdist_filename(filename)[1])


class Retriever:
    """Provenance lookups for one run. ``http`` is None in ``--offline`` mode."""

    def __init__(self, cache: DiskCache, http: Http | None, *, preread: dict[str, Entry] | None = None) -> None:
        self.cache = cache
        self.http = http
        #: Provenance entries the run already read from the cache (by sha256), each used once.
        self.preread = preread if preread is not None else {}

    # -- project pages --------------------------------------------------------------------

    def page(self, index: str, project: str) -> ProjectPage | Unavailable:
        url = project_page_url(index, project)
        cached = self.cache.page(url)
        if self.http is None:
            if cached is None or cached.body is None:
                return Unavailable(
                    f"--offline, and the index page {redact(url)} is not in the cache; run once without --offline"
                )
            return self._parse_page(cached.body, cached.location or url)
        try:
            response = self.http.get(
                url,
                accept=SIMPLE_JSON,
                limit=MAX_PAGE,
                headers=cached.conditional_headers() if cached else None,
            )
        except FetchError as exc:
            return Unavailable(f"could not read the index page: {exc}")
        if response.status == 304 and cached is not None and cached.body is not None:
            return self._parse_page(cached.body, cached.location or url)
        if response.status == 404:
            return Unavailable(f"the index has no project {project!r} ({redact(url)}: HTTP 404)")
        if response.status != 200:
            return Unavailable(f"the index page {redact(url)} answered HTTP {response.status}")
        content_type = response.headers.get("content-type")
        if not is_json_page(content_type):
            return Unavailable(
                f"{redact(url)} answered {content_type or 'no content type'}, not the JSON simple "
                "API (PEP 691) that provenance lookup needs"
            )
        # PEP 691: relative URLs in the page resolve against where it was served from.
        page = self._parse_page(response.body, response.url)
        if isinstance(page, ProjectPage):
            self.cache.store_page(
                Entry(
                    url,
                    response.body,
                    response.headers.get("etag"),
                    response.headers.get("last-modified"),
                    location=response.url,
                )
            )
        return page

    @staticmethod
    def _parse_page(body: bytes, url: str) -> ProjectPage | Unavailable:
        try:
            return parse_project_page(body, url=url)
        except PageError as exc:
            return Unavailable(f"unusable index page: {exc}")

    # -- provenance -----------------------------------------------------------------------

    def provenance(self, file: LockedFile, page: ProjectPage | Unavailable | None) -> tuple[LockedFile, Retrieval]:
        """The provenance of ``file`` (and ``file`` with its filename filled in from the page,
        for a requirements-file hash). ``page`` is the project's page, or None offline when
        the file's name is already known."""
        if file.not_on_index:
            return file, NoProvenance(f"{file.not_on_index}; PEP 740 provenance exists only for files on an index")
        sha256 = file.sha256
        assert sha256 is not None  # only vcs/directory entries (not_on_index) lack one
        if isinstance(page, Unavailable):
            return file, page
        entry = None
        if page is not None:
            entry = page.by_filename(file.filename) if file.filename else page.by_sha256(sha256)
            if entry is None:
                if file.filename:
                    return file, Unavailable(f"the index does not list {file.filename} ({redact(page.url)})")
                return file, Unavailable(
                    f"the index lists no file of {file.name} {file.version} with sha256 "
                    f"{file.sha256} ({redact(page.url)})"
                )
            if file.filename is None:
                file = dataclasses.replace(file, filename=entry.filename, url=file.url or entry.url)
            if entry.sha256 is not None and entry.sha256 != file.sha256:
                return file, Unavailable(
                    "the index now serves a different file under this name "
                    f"(sha256 {entry.sha256}, the input pins {sha256})"
                )
        cached = self.preread.pop(sha256, None) or self.cache.provenance(sha256)
        if self.http is None:
            return file, self._offline(cached)
        assert entry is not None
        assert file.filename is not None
        previously = cached is not None and cached.body is not None
        if entry.declares_provenance and entry.provenance is None:
            # PEP 740: `provenance: null` says the index has none for this file.
            self.cache.store_provenance(sha256, Entry(page.url if page else "", None))
            return file, NoProvenance(
                "the index lists no provenance for this file (provenance: null)"
                + (", though it served one before" if previously else ""),
                disappeared=previously,
            )
        url = entry.provenance or integrity_url(
            file.index or "", file.name, _version_of(file, file.filename), file.filename
        )
        return file, self._fetch(sha256, url, cached)

    def _offline(self, cached: Entry | None) -> Retrieval:
        if cached is None:
            return Unavailable(
                "--offline, and this file's provenance was never fetched into the cache; run once without --offline"
            )
        if cached.body is None:
            return NoProvenance(f"no provenance when last looked up ({_when(cached.stored_at)})")
        return Found(cached.body, cached.url, "cached")

    def _fetch(self, sha256: str, url: str, cached: Entry | None) -> Retrieval:
        assert self.http is not None
        usable = cached if cached is not None and cached.body is not None and cached.url == url else None
        try:
            response = self.http.get(
                url,
                accept=INTEGRITY_ACCEPT,
                limit=MAX_PROVENANCE,
                headers=usable.conditional_headers() if usable else None,
            )
        except FetchError as exc:
            return Unavailable(f"could not fetch the provenance: {exc}")
        status = response.status
        if status == 304 and usable is not None and usable.body is not None:
            return Found(usable.body, url, "revalidated")
        if status == 200:
            self.cache.store_provenance(
                sha256,
                Entry(
                    url,
                    response.body,
                    response.headers.get("etag"),
                    response.headers.get("last-modified"),
                    location=response.url,
                ),
            )
            return Found(response.body, url, "fetched")
        if status == 404:
            previously = cached is not None and cached.body is not None
            self.cache.store_provenance(sha256, Entry(url, None))
            reason = f"the index has no provenance for this file ({redact(url)}: HTTP 404)"
            if previously and cached is not None:
                reason += f"; it served one before (cached {_when(cached.stored_at)})"
            return NoProvenance(reason, disappeared=previously)
        if status == 403:
            return Unknown(
                f"the index refused the provenance request ({redact(url)}: HTTP 403; attestations "
                "may be disabled there), so whether this file is attested is unknown"
            )
        return Unavailable(f"{redact(url)} answered HTTP {status}")
