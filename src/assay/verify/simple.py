"""Reading a project page of the JSON simple API (PEP 691) for what verification needs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urljoin

#: PEP 691: the JSON form of the simple API, version 1.
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class PageError(ValueError):
    """A project page that cannot be used; the message says what is wrong with it."""


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None
    #: PEP 740: ``files[].provenance`` resolved to an absolute URL, or None for ``null``.
    provenance: str | None
    #: Whether the page has a ``provenance`` key for the file at all (API 1.3+, PEP 740).
    declares_provenance: bool


@dataclass(frozen=True)
class ProjectPage:
    url: str
    files: tuple[IndexFile, ...]

    def by_filename(self, filename: str) -> IndexFile | None:
        return next((f for f in self.files if f.filename == filename), None)

    def by_sha256(self, sha256: str) -> IndexFile | None:
        return next((f for f in self.files if f.sha256 == sha256), None)


def is_json_page(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in (SIMPLE_JSON, "application/json")


def parse_project_page(body: bytes, *, url: str) -> ProjectPage:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise PageError(f"{url} is not JSON (PEP 691)") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, list):
        raise PageError(f"{url} has no 'files' list (PEP 691)")
    parsed: list[IndexFile] = []
    for number, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise PageError(f"{url}: files[{number}] is not an object")
        filename, file_url = entry.get("filename"), entry.get("url")
        hashes = entry.get("hashes")
        if not isinstance(filename, str) or not isinstance(file_url, str) or not isinstance(hashes, dict):
            raise PageError(f"{url}: files[{number}] lacks filename, url or hashes (PEP 691)")
        sha256 = hashes.get("sha256")
        provenance = entry.get("provenance")
        if provenance is not None and not isinstance(provenance, str):
            raise PageError(f"{url}: files[{number}].provenance is neither a URL nor null (PEP 740)")
        parsed.append(
            IndexFile(
                filename=filename,
                # PEP 691: file URLs may be relative to the page.
                url=urljoin(url, file_url),
                sha256=sha256.lower() if isinstance(sha256, str) else None,
                # PEP 740 requires a fully qualified URL; resolving a relative one against the
                # page is harmless (the provenance is verified, not trusted for its origin).
                provenance=urljoin(url, provenance) if provenance else None,
                declares_provenance="provenance" in entry,
            )
        )
    return ProjectPage(url=url, files=tuple(parsed))
