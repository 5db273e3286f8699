"""What gets verified: one distribution file, as a lock (or the user) names it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.utils import NormalizedName

from assay.verify.errors import InputError

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class LockedFile:
    """A distribution file and the sha256 the input pins it to.

    ``filename`` is None only for a requirements-file hash that has not been matched to a file
    on the index yet (the index page tells which file has that hash). ``sha256`` is None only
    for packages that are not files at all (PEP 751 ``vcs`` and ``directory`` sources), which
    can carry no PEP 740 provenance.
    """

    name: NormalizedName
    version: str | None
    filename: str | None
    sha256: str | None
    #: The simple repository API base URL (PEP 503/691) to ask for provenance, if any.
    index: str | None
    #: Where the file can be downloaded (PEP 751 ``url``) or found locally (``path``).
    url: str | None = None
    path: str | None = None
    size: int | None = None
    #: Why this entry cannot have provenance (PEP 751 vcs/directory/archive sources).
    not_on_index: str | None = None

    @property
    def label(self) -> str:
        """How messages name this file: its filename, else ``name version``."""
        if self.filename:
            return self.filename
        return f"{self.name} {self.version or ''}".strip()


def sha256_of(hashes: dict[str, str] | None, *, where: str) -> str:
    """The sha256 hex digest from a ``{algorithm: hex}`` table, lowercased.

    PEP 740 attestations sign a file's sha256 (the in-toto subject digest), so a file pinned
    only by another algorithm cannot be checked against its attestations at all.
    """
    if not hashes:
        raise InputError(f"{where}: no hashes; PEP 740 verification needs each file's sha256")
    value = hashes.get("sha256")
    if value is None:
        found = ", ".join(sorted(hashes)) or "none"
        raise InputError(
            f"{where}: no sha256 hash (found: {found}); PEP 740 attestations sign sha256 "
            "digests, so re-lock with sha256 hashes"
        )
    return checked_sha256(value, where=where)


def checked_sha256(value: str, *, where: str) -> str:
    digest = value.strip().lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise InputError(f"{where}: {value!r} is not a sha256 hex digest (64 hex characters)")
    return digest
