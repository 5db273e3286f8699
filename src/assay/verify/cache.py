"""The on-disk cache of provenance (by the file's sha256) and of simple pages (by URL).

Cached bytes are *untrusted input*, exactly like a fresh response: every run verifies them
again from scratch, so a poisoned cache (say, a CI cache restored from another branch) can make
a check fail but never pass. What the cache buys is the network: an online run revalidates
each entry with a conditional request (``If-None-Match`` / ``If-Modified-Since``; a 304 reuses
the body, a 404 means the provenance disappeared) and ``--offline`` reads it alone.

Entries also record "no provenance" (an index's 404, or ``provenance: null`` on its page), so
``--offline`` can tell an unattested file from one never looked up.

The one exception is ``<root>/v1/checks``: results of earlier checks, which a run uses only
when they carry a MAC under a key kept outside this directory (``assay.verify.memo`` says why
that keeps the statement above true).

Layout: ``<root>/v1/provenance/<sha256[:2]>/<sha256>`` and ``<root>/v1/pages/<h[:2]>/<h>``
(``h`` = sha256 of the page URL); each file is one JSON header line, then the raw body.
``<root>/v1/checks/<n[:2]>/<n>`` (``n`` named by the memo). Writes go through a temporary file
and ``os.replace``, so concurrent runs never see half an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

_FORMAT = "v1"


def default_cache_dir() -> Path:
    """``assay/verify`` under the platform's user cache directory (``$XDG_CACHE_HOME`` or
    ``~/.cache`` on Linux)."""
    return Path(platformdirs.user_cache_dir("assay", appauthor=False)) / "verify"


@dataclass(frozen=True)
class Entry:
    url: str
    #: The body; None records that the index had no provenance for the file.
    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    stored_at: float = 0.0
    #: Where the body finally came from, after redirects (relative URLs in it resolve there).
    location: str | None = None

    def conditional_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class DiskCache:
    def __init__(self, root: Path) -> None:
        self.root = root / _FORMAT
        #: Set when a write failed (read-only or full disk); verification goes on without it.
        self.write_error: str | None = None

    def _provenance_path(self, sha256: str) -> Path:
        return self.root / "provenance" / sha256[:2] / sha256

    def _page_path(self, url: str) -> Path:
        key = hashlib.sha256(url.encode()).hexdigest()
        return self.root / "pages" / key[:2] / key

    # -- provenance -----------------------------------------------------------------------

    def provenance(self, sha256: str) -> Entry | None:
        return self._read(self._provenance_path(sha256))

    def store_provenance(self, sha256: str, entry: Entry) -> None:
        self._write(self._provenance_path(sha256), entry)

    # -- simple pages ---------------------------------------------------------------------

    def page(self, url: str) -> Entry | None:
        entry = self._read(self._page_path(url))
        return entry if entry is not None and entry.url == url else None

    def store_page(self, entry: Entry) -> None:
        self._write(self._page_path(entry.url), entry)

    # -- transparency-log receipts (assay.verify.logcheck), by the file's sha256 -------------

    def receipt(self, sha256: str) -> bytes | None:
        try:
            return (self.root / "receipts" / sha256[:2] / sha256).read_bytes()
        except OSError:
            return None

    def store_receipt(self, sha256: str, data: bytes) -> None:
        self._replace(self.root / "receipts" / sha256[:2] / sha256, data)

    # -- remembered check results (assay.verify.memo) ----------------------------------------

    def check_result(self, name: str) -> bytes | None:
        try:
            return (self.root / "checks" / name[:2] / name).read_bytes()
        except OSError:
            return None

    def store_check_result(self, name: str, data: bytes) -> None:
        self._replace(self.root / "checks" / name[:2] / name, data)

    # -- files ----------------------------------------------------------------------------

    def _read(self, path: Path) -> Entry | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        header, sep, body = data.partition(b"\n")
        try:
            meta = json.loads(header)
            entry = Entry(
                url=str(meta["url"]),
                body=body if meta["present"] else None,
                etag=meta.get("etag"),
                last_modified=meta.get("last_modified"),
                stored_at=float(meta.get("stored_at", 0.0)),
                location=meta.get("location"),
            )
        except (ValueError, KeyError, TypeError, RecursionError):
            return None  # a damaged entry is a miss; the next online run rewrites it
        return entry if sep else None

    def _write(self, path: Path, entry: Entry) -> None:
        header = json.dumps(
            {
                "url": entry.url,
                "present": entry.body is not None,
                "etag": entry.etag,
                "last_modified": entry.last_modified,
                "stored_at": entry.stored_at or time.time(),
                "location": entry.location,
            },
            separators=(",", ":"),
        ).encode()
        self._replace(path, header + b"\n" + (entry.body or b""))

    def _replace(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            self.write_error = f"could not write the cache under {self.root}: {exc.strerror or exc}"
