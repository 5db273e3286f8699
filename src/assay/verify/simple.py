"""Reading a project page of the JSON simple API (PEP 691) for what verification needs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assay import mediatypes, untrusted_json

#: PEP 691: the JSON form of the simple API, version 1 (what ``assay verify`` asks for).
SIMPLE_JSON = mediatypes.SIMPLE_JSON_V1


class PageError(ValueError):
    """A project page that cannot be used; the message says what is wrong with it."""


class _File(BaseModel):
    """One ``files[]`` entry: the keys verification reads (PEP 691 requires the first three;
    PEP 740 adds ``provenance``, a URL or null). Other keys are ignored, as PEP 691 asks of
    clients; strict, so a number where a string belongs is refused rather than converted."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    filename: str
    url: str
    hashes: dict[str, object]
    provenance: str | None = None
    #: assay's own key: the URL of the file's transparency-log receipt (docs/log-format.md).
    log_receipt: str | None = Field(default=None, alias="_assay_log_receipt")


class _Page(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    files: list[_File]


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None
    #: PEP 740: ``files[].provenance`` resolved to an absolute URL, or None for ``null``.
    provenance: str | None
    #: Whether the page has a ``provenance`` key for the file at all (API 1.3+, PEP 740).
    declares_provenance: bool
    #: The file's C2SP tlog-proof receipt URL (``_assay_log_receipt``), or None.
    log_receipt: str | None = None


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
    return media in (SIMPLE_JSON, mediatypes.JSON)


def _where(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as the JSON path a reader knows: ``files[3].url``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _problem(url: str, exc: ValidationError) -> PageError:
    error = exc.errors(include_url=False)[0]
    where = _where(tuple(error["loc"]))
    if where.endswith(".provenance"):
        return PageError(f"{url}: {where} is neither a URL nor null (PEP 740)")
    if where == "files":
        return PageError(f"{url} has no 'files' list (PEP 691)")
    return PageError(f"{url}: {where}: {error['msg']} (PEP 691 requires filename, url and hashes)")


def parse_project_page(body: bytes, *, url: str) -> ProjectPage:
    try:
        doc = untrusted_json.loads(body)  # bounded nesting before pydantic walks it
    except ValueError:
        raise PageError(f"{url} is not JSON (PEP 691)") from None
    if not isinstance(doc, dict):
        raise PageError(f"{url} has no 'files' list (PEP 691)")
    try:
        page = _Page.model_validate(doc)
    except ValidationError as exc:
        raise _problem(url, exc) from None
    declared = [isinstance(entry, dict) and "provenance" in entry for entry in doc["files"]]
    parsed: list[IndexFile] = []
    for entry, has_provenance in zip(page.files, declared, strict=True):
        sha256 = entry.hashes.get("sha256")
        parsed.append(
            IndexFile(
                filename=entry.filename,
                # PEP 691: file URLs may be relative to the page.
                url=urljoin(url, entry.url),
                sha256=sha256.lower() if isinstance(sha256, str) else None,
                # PEP 740 requires a fully qualified URL; resolving a relative one against the
                # page is harmless (the provenance is verified, not trusted for its origin).
                provenance=urljoin(url, entry.provenance) if entry.provenance else None,
                declares_provenance=has_provenance,
                log_receipt=urljoin(url, entry.log_receipt) if entry.log_receipt else None,
            )
        )
    return ProjectPage(url=url, files=tuple(parsed))
