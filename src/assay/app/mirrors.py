"""The mirror engine (``assay.mirror``) behind the read path's ``index.mirrors.Mirrors`` port.

An index's upstreams are itself when it is a mirror, else the mirror indexes it is layered
over (``bases``), in order; each mirror index has its own policy (``assay admin policy set
--index NAME``), which is the one applied to what comes through it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from packaging.utils import canonicalize_name

from assay.index.mirrors import MIRROR_FILES, MirroredFile, MirroredNames, MirroredPage, MirrorRefusal
from assay.index.model import ProjectLink
from assay.indexes import Indexes, IndexRef
from assay.mirror.policy import Policy
from assay.mirror.report import get_policy
from assay.mirror.service import MirrorService, Refused, UpstreamUnavailable
from assay.mirror.upstream import UpstreamList
from assay.storage.db import Database

#: At most this many seconds (and never longer than the page TTL) a worker reuses a mirrored
#: page it has just decided, instead of reading the kept page, the kept files and the recorded
#: decisions again: a policy change or a cooldown's end is seen within this bound.
PAGE_REUSE = 5.0
_REUSED_PAGES = 4096


@dataclass(frozen=True)
class _Listed:
    """A mirror's project list as last filtered: the list object, its generation, the
    policy's digest, and the links that passed."""

    upstream: UpstreamList
    generation: object
    policy: str
    links: tuple[ProjectLink, ...]


class EngineMirrors:
    def __init__(
        self,
        service: MirrorService,
        db: Database,
        indexes: Indexes,
        *,
        page_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.db = db
        self.indexes = indexes
        self.reuse = min(PAGE_REUSE, page_ttl)
        self.clock = clock
        self._lists: dict[int, _Listed] = {}
        self._merged: dict[int, tuple[list[object], tuple[ProjectLink, ...]]] = {}
        self._pages: OrderedDict[tuple[int, str, str], tuple[float, MirroredPage]] = OrderedDict()

    def _upstreams(self, index: IndexRef) -> list[IndexRef]:
        if index.is_mirror:
            return [index]
        found = (self.indexes.by_name(name) for name in index.bases)
        return [base for base in found if base is not None and base.is_mirror]

    def serves(self, index: IndexRef) -> bool:
        return index.is_mirror or bool(index.bases)

    async def _policy(self, base: IndexRef) -> Policy:
        return await anyio.to_thread.run_sync(get_policy, self.db, base.id)

    async def page(self, index: IndexRef, name: str, base_url: str) -> MirroredPage | MirrorRefusal | None:
        trouble: str | None = None
        for base in self._upstreams(index):
            assert base.mirror_url is not None
            key = (base.id, name, base_url)
            reused = self._pages.get(key)
            if reused is not None and self.clock() < reused[0]:
                return reused[1]
            try:
                got = await self.service.project_page(
                    base.id, base.mirror_url, await self._policy(base), name, base_url=base_url
                )
            except UpstreamUnavailable as exc:
                trouble = str(exc)
                continue  # the next base may have it
            if got.page is not None:
                page = MirroredPage(got.page, got.warnings)
                if self.reuse > 0 and not got.warnings:  # a stale page is asked again
                    self._pages[key] = (self.clock() + self.reuse, page)
                    self._pages.move_to_end(key)
                    while len(self._pages) > _REUSED_PAGES:
                        self._pages.popitem(last=False)
                return page
        return MirrorRefusal(502, trouble) if trouble else None

    async def names(self, index: IndexRef) -> MirroredNames:
        warnings: list[str] = []
        key: list[object] = []
        lists: list[tuple[ProjectLink, ...]] = []
        for base in self._upstreams(index):
            assert base.mirror_url is not None
            policy = await self._policy(base)
            memo = self._lists.get(base.id)
            got = await self.service.project_names(
                base.id, base.mirror_url, memo.upstream if memo else None, memo.generation if memo else None
            )
            if memo is None or memo.upstream is not got.names or memo.policy != policy.digest:
                # Filtered once per list content and policy, not per request (hundreds of
                # thousands of names on the public index).
                listed = []
                for spelled in got.names.names:
                    name = canonicalize_name(spelled)
                    if policy.listed(name):
                        listed.append(ProjectLink(spelled, name))
                memo = _Listed(got.names, got.generation, policy.digest, tuple(listed))
                self._lists[base.id] = memo
            key.append((base.id, got.generation, policy.digest))
            warnings.extend(got.warnings)
            lists.append(memo.links)
        merged = self._merged.get(index.id)
        if merged is None or merged[0] != key:
            if len(lists) == 1:
                projects = lists[0]
            else:
                seen: set[str] = set()
                out: list[ProjectLink] = []
                for links in lists:
                    for link in links:
                        if link.normalized_name not in seen:  # the first upstream's entry stands
                            seen.add(link.normalized_name)
                            out.append(link)
                projects = tuple(out)
            merged = self._merged[index.id] = (key, projects)
        return MirroredNames(merged[1], tuple(warnings), tuple(key))

    async def open_file(self, index: IndexRef, key: str) -> MirroredFile | MirrorRefusal:
        # ``mirror/<mirror index id>/<sha[:2]>/<sha[2:4]>/<rest>/<filename>`` (assay.mirror.files)
        parts = key.removeprefix(MIRROR_FILES).split("/")
        base = next((b for b in self._upstreams(index) if parts[0] == str(b.id)), None)
        if base is None or len(parts) < 2 or base.mirror_url is None:
            return MirrorRefusal(404, "No such file.")
        got = await self.service.open_file(base.id, base.mirror_url, await self._policy(base), parts[-1])
        if isinstance(got, Refused):
            return MirrorRefusal(got.status, got.reason)
        return MirroredFile(got.filename, got.blob_key, got.sha256, got.warnings)

    async def provenance(self, index: IndexRef, filename: str) -> bytes | MirrorRefusal:
        refusal = MirrorRefusal(404, f"No provenance available for {filename}")
        for base in self._upstreams(index):
            assert base.mirror_url is not None
            got = await self.service.provenance(base.id, base.mirror_url, await self._policy(base), filename)
            if not isinstance(got, Refused):
                return got
            refusal = MirrorRefusal(got.status, got.reason)
        return refusal
