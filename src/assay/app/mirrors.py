"""The mirror engine (``assay.mirror``) behind the read path's ``index.mirrors.Mirrors`` port.

An index's upstreams are itself when it is a mirror, else the mirror indexes it is layered
over (``bases``), in order; each mirror index has its own policy (``assay admin policy set
--index NAME``), which is the one applied to what comes through it.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import cast

import anyio
from packaging.utils import canonicalize_name

from assay.index.mirrors import MIRROR_FILES, MirroredFile, MirroredNames, MirroredPage, MirrorRefusal
from assay.index.model import ProjectLink
from assay.index.paths import METADATA_SUFFIX
from assay.index.serials import MISS, Serials
from assay.indexes import Indexes, IndexRef
from assay.mirror.policy import Policy
from assay.mirror.report import get_policy
from assay.mirror.service import MirroredPage as EnginePage
from assay.mirror.service import MirrorService, Refused, UpstreamUnavailable, project_of
from assay.mirror.upstream import UpstreamList
from assay.storage.db import Database


@dataclass(frozen=True)
class Decided:
    """A project's decided page through one mirror, and the policy it was decided under."""

    page: EnginePage
    policy: Policy


@dataclass(frozen=True)
class _Listed:
    """A mirror's project list as last filtered: the list object, its generation, the
    policy's digest, and the links that passed."""

    upstream: UpstreamList
    generation: object
    policy: str
    links: tuple[ProjectLink, ...]


class EngineMirrors:
    def __init__(self, service: MirrorService, db: Database, indexes: Indexes, serials: Serials) -> None:
        self.service = service
        self.db = db
        self.indexes = indexes
        self.serials = serials
        self._lists: dict[int, _Listed] = {}
        self._merged: dict[int, tuple[list[object], tuple[ProjectLink, ...]]] = {}

    def _upstreams(self, index: IndexRef) -> list[IndexRef]:
        if index.is_mirror:
            return [index]
        found = (self.indexes.by_name(name) for name in index.bases)
        return [base for base in found if base is not None and base.is_mirror]

    def serves(self, index: IndexRef) -> bool:
        return index.is_mirror or bool(index.bases)

    async def _policy(self, base: IndexRef) -> Policy:
        return await anyio.to_thread.run_sync(get_policy, self.db, base.id)

    def _known(self, key: tuple[object, ...]) -> object:
        """A decision kept under ``key`` while it stands (see ``page``), else ``MISS``."""
        known = self.serials.known(key)
        if known is MISS:
            return MISS
        value, until = cast("tuple[object, dt.datetime]", known)
        return value if self.service.clock() < until else MISS

    async def _decide(
        self, base: IndexRef, name: str, base_url: str
    ) -> tuple[Decided, MirroredPage | None] | MirrorRefusal:
        """Decide ``name``'s page through ``base`` now, and keep the decision (and, for
        ``base_url``, the page to serve) while it stands."""
        assert base.mirror_url is not None
        answers = self.serials.answers
        generation, read_at = answers.generation, time.monotonic()
        policy = await self._policy(base)
        try:
            got = await self.service.project_page(base.id, base.mirror_url, policy, name, base_url=base_url)
        except UpstreamUnavailable as exc:
            return MirrorRefusal(502, str(exc))
        page = MirroredPage(got.page, got.warnings) if got.page is not None else None
        decided = Decided(got, policy)
        if got.valid_until is not None and not got.warnings:  # a stale page is asked again
            answers.put(("mirror-decided", base.id, name), (decided, got.valid_until), generation, read_at)
            answers.put(("mirror", base.id, name, base_url), (page, got.valid_until), generation, read_at)
        return decided, page

    async def page(self, index: IndexRef, name: str, base_url: str) -> MirroredPage | MirrorRefusal | None:
        trouble: str | None = None
        for base in self._upstreams(index):
            # Issue 12, the warm path: a page decided earlier is served again while nothing it
            # was decided from can have changed: no commit since (the serials' change signal:
            # SQLite's wal-index header, PostgreSQL's NOTIFY within serial_poll_seconds; the
            # kept page, the policy, the kept files and the pins are all in the database) and
            # before its ``valid_until`` (the page's TTL, the next cooldown end). A hit is a
            # dict lookup, as a hosted page's serial is.
            known = self._known(("mirror", base.id, name, base_url))
            if known is not MISS:
                page = cast("MirroredPage | None", known)
            else:
                got = await self._decide(base, name, base_url)
                if isinstance(got, MirrorRefusal):
                    trouble = got.reason
                    continue  # the next base may have it
                page = got[1]
            if page is not None:
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
        filename = parts[-1]
        project = project_of(filename.removesuffix(METADATA_SUFFIX))
        decided: Decided | None = None
        if project is not None:
            # The policy is asked on every request, from the decision the page route keeps
            # while it stands (the same rule as pages: nothing read on a warm request).
            known = self._known(("mirror-decided", base.id, project))
            if known is not MISS:
                decided = cast(Decided, known)
            else:
                got_decided = await self._decide(base, project, "")
                if isinstance(got_decided, MirrorRefusal):
                    return got_decided
                decided = got_decided[0]
        policy = decided.policy if decided is not None else await self._policy(base)
        got = await self.service.open_file(
            base.id, base.mirror_url, policy, filename, decided=decided.page if decided is not None else None
        )
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
