"""Which indexes exist: ``IndexRef`` (one index as requests see it) and ``Indexes``, the
per-process view of the ``indexes`` table that routes resolve a URL's first segment with.

Indexes change rarely (an admin's ``assay admin index create|delete``), while every request
names one, so the table is read once and kept. A name not in the kept view is looked up by
itself (one indexed query), so an index created a moment ago by another process is found at
once; a name found missing is remembered as missing for ``refresh`` seconds, so requests for a
non-existent index cannot turn into a query each. The whole view is read again after
``max_age`` seconds, which bounds how long a deleted index keeps answering in a process that
was not told. A deleted index's rows are gone with it (``ON DELETE CASCADE``), so in that
window it serves empty pages, never another index's data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from assay.storage.db import Database
from assay.storage.models import DEFAULT_INDEX_ID, DEFAULT_INDEX_NAME, PackageIndex


@dataclass(frozen=True, slots=True)
class IndexRef:
    id: int
    name: str
    description: str = ""
    #: None: the server's ``--private`` setting decides.
    private: bool | None = None
    #: None: the server's Trusted Publishing audience.
    audience: str | None = None
    #: A mirror index's upstream simple index URL (issue 12); None: hosted.
    mirror_url: str | None = None
    #: The mirror indexes a hosted index is layered over, in order (issue 12).
    bases: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        return self.id == DEFAULT_INDEX_ID

    @property
    def prefix(self) -> str:
        """The index's URL path below the site root: "" for the default, ``/team`` for team."""
        return "" if self.is_default else f"/{self.name}"

    @property
    def blob_prefix(self) -> str:
        """Where the index's blobs live in the blob store: the default index's at the top (as
        before indexes existed), a named index's under its name, so the same bytes uploaded to
        two indexes are two blobs that one index's removal cannot take from the other."""
        return "" if self.is_default else f"{self.name}/"

    @property
    def is_mirror(self) -> bool:
        return self.mirror_url is not None

    def is_private(self, server_default: bool) -> bool:
        return server_default if self.private is None else self.private


DEFAULT = IndexRef(DEFAULT_INDEX_ID, DEFAULT_INDEX_NAME)


#: Names remembered as missing, at most (then forgotten at once: a bound, not an LRU).
_MAX_MISSING = 10_000


def _ref(row: PackageIndex) -> IndexRef:
    return IndexRef(
        row.id, row.name, row.description, row.private, row.audience, row.mirror_url, tuple(row.bases or ())
    )


def load_all(db: Database) -> list[IndexRef]:
    with db.read() as session:
        return [_ref(r) for r in session.execute(sa.select(PackageIndex).order_by(PackageIndex.id)).scalars()]


class Indexes:
    def __init__(
        self,
        db: Database,
        *,
        refresh: float = 1.0,
        max_age: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._refresh = refresh
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._by_name: dict[str, IndexRef] = {}
        self._by_id: dict[int, IndexRef] = {}
        self._loaded = float("-inf")
        self._missing: dict[str, float] = {}

    def _reload(self) -> None:
        refs = load_all(self._db)
        with self._lock:
            self._by_name = {r.name: r for r in refs}
            self._by_id = {r.id: r for r in refs}
            self._loaded = self._clock()
            self._missing.clear()

    def _fresh(self, *, missed: bool) -> None:
        age = self._clock() - self._loaded
        if age > self._max_age or (missed and age > self._refresh):
            self._reload()

    def by_name(self, name: str) -> IndexRef | None:
        """The index named ``name`` ("default" is the root index), or None."""
        self._fresh(missed=False)
        ref = self._by_name.get(name)
        if ref is not None:
            return ref
        now = self._clock()
        if now - self._missing.get(name, float("-inf")) < self._refresh:
            return None
        with self._db.read() as session:
            row = session.execute(sa.select(PackageIndex).where(PackageIndex.name == name)).scalar_one_or_none()
        with self._lock:
            if row is None:
                if len(self._missing) > _MAX_MISSING:
                    self._missing.clear()
                self._missing[name] = now
                return None
            ref = _ref(row)
            self._by_name[ref.name] = ref
            self._by_id[ref.id] = ref
            self._missing.pop(name, None)
        return ref

    def by_id(self, index_id: int) -> IndexRef | None:
        self._fresh(missed=False)
        ref = self._by_id.get(index_id)
        if ref is None:
            self._fresh(missed=True)
            ref = self._by_id.get(index_id)
        return ref

    def default(self) -> IndexRef:
        return self.by_id(DEFAULT_INDEX_ID) or DEFAULT

    def forget(self) -> None:
        """Read the table again at the next lookup (after this process changed it)."""
        with self._lock:
            self._loaded = float("-inf")
