"""The simple repository API as data: one model, serialized to HTML (PEP 503) and JSON (PEP 691).

Each field names the PEP that added it; the serializers in ``html.py`` and ``json.py`` only
decide spelling, never content.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: PEP 629 repository version. 1.1 = PEP 700, 1.2 = PEP 708 (rejected; nothing to serve),
#: 1.3 = PEP 740 provenance, 1.4 = PEP 792 project status.
API_VERSION = "1.4"


@dataclass(frozen=True, slots=True)
class ProjectLink:
    """An entry of the project list (PEP 503 root page, PEP 691 ``projects``)."""

    name: str  # display name
    normalized_name: str


@dataclass(frozen=True, slots=True)
class FileLink:
    filename: str
    #: Absolute or page-relative URL of the file (PEP 503 allows both).
    url: str
    #: PEP 503 / 691: hex digests by lowercase hashlib name; sha256 always present.
    sha256: str
    #: PEP 700: size in bytes (required from API 1.1). None only for a mirrored file whose
    #: upstream gave none (a PEP 503 HTML page) and that is not held yet (assay.mirror).
    size: int | None
    #: PEP 700: upload time; serialized as ISO 8601 UTC with a "Z". None only for a mirrored
    #: file whose upstream gave none (PEP 700 makes it optional).
    upload_time: dt.datetime | None
    #: PEP 503 data-requires-python / PEP 691 requires-python.
    requires_python: str | None
    #: PEP 592: False, or True / a reason string when yanked.
    yanked: bool | str
    #: PEP 658 / 714: sha256 of the core metadata file served at ``<url>.metadata``, or None.
    core_metadata_sha256: str | None
    #: PEP 740: absolute URL of the provenance object, or None.
    provenance_url: str | None
    #: Whether this index's transparency log has the file's upload (its receipt is offered as
    #: ``_assay_log_receipt``). Not for a mirrored file: its upload was upstream's, never
    #: logged here, and a receipt URL that answers 404 reads as a missing log entry.
    logged: bool = True


@dataclass(frozen=True, slots=True)
class ProjectStatus:
    """PEP 792: exactly one status; "active" when nothing else is set."""

    status: str = "active"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ProjectPage:
    #: Normalized name (PEP 691 ``name``).
    name: str
    files: tuple[FileLink, ...]
    #: PEP 700: every version of the project, including versions without files left.
    versions: tuple[str, ...]
    status: ProjectStatus
    #: The project's change serial; part of the page's identity (ETag, cache key).
    serial: int


@dataclass(frozen=True, slots=True)
class ProjectList:
    projects: tuple[ProjectLink, ...]
    #: The index's change serial (max over projects), PyPI's ``_last-serial``.
    serial: int


def format_upload_time(value: dt.datetime) -> str:
    """PEP 700: ISO 8601 ``yyyy-mm-ddThh:mm:ss.ffffffZ`` in UTC."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
