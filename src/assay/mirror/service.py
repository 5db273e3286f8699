"""``MirrorService``: what an index's read routes ask for a project it does not host
(docs/mirrors.md, "Interface").

``project_page`` returns the upstream page through the policy as the index's own page model
(``assay.index.model.ProjectPage``), with every URL served by assay, so ``index.html`` and
``index.json`` render it unchanged; ``open_file`` answers a file URL (fetching the file on its
first download); ``provenance`` answers the Integrity API route.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import quote

import anyio
import httpx
import sqlalchemy as sa
from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, parse_sdist_filename
from packaging.utils import parse_wheel_filename as _parse_wheel

from assay import audit
from assay.index.model import FileLink, ProjectPage, ProjectStatus
from assay.index.paths import FILES_PREFIX, METADATA_SUFFIX, provenance_path
from assay.mirror.attested import Attestations, Evidence
from assay.mirror.decide import Decision, decide, file_version
from assay.mirror.files import (
    FileFetcher,
    FileRefused,
    InProgress,
    Kept,
    KeptMetadata,
    kept_file,
    kept_metadata,
    mirror_key,
)
from assay.mirror.pagecache import ListResult, PageCache, UpstreamUnavailable
from assay.mirror.policy import Policy
from assay.mirror.upstream import UpstreamFile, UpstreamList, UpstreamPage
from assay.storage.blobs import BlobStore
from assay.storage.db import Database
from assay.storage.models import MirrorConflict, MirrorDecision, MirrorFile, utcnow

log = logging.getLogger(__name__)

__all__ = ["MirrorService", "MirroredPage", "Opened", "Refused", "UpstreamUnavailable"]

#: The audit log's actor for decisions the mirror makes by itself.
ACTOR = "mirror"
#: How long a request waits for another worker's first download of the same file.
IN_PROGRESS_WAIT = 60.0
_MAX_SIZES = 100_000
#: Seconds a page with a provenance upstream could not give is kept before asking again.
RETRY_UNAVAILABLE = 5.0
#: Concurrent provenance fetches and checks per page.
PAGE_CONCURRENCY = 16


@dataclass(frozen=True)
class MirroredPage:
    #: The page to render, visible files only; None when upstream has no such project.
    page: ProjectPage | None
    #: Say these in a ``Warning``-style header (and the log): the page is served stale.
    warnings: tuple[str, ...]
    #: Every file's decision, hidden ones included.
    decisions: tuple[Decision, ...]
    #: Until when (``MirrorService.clock``) these decisions stand as long as nothing they were
    #: made from changes in the database (the kept page, the policy, the kept files, the pins):
    #: the kept page's freshness (``mirror_page_ttl``), the first cooldown end among the hidden
    #: files, a short retry after a provenance fetch failed. None: decide again next time
    #: (served stale, upstream unreachable).
    valid_until: dt.datetime | None = None
    #: What the decisions were made from: upstream's page (None: no such project) and the
    #: files kept at the time, so a file request answered from this page reads nothing again.
    upstream: UpstreamPage | None = None
    kept: Mapping[str, Kept] = field(default_factory=dict)


@dataclass(frozen=True)
class Opened:
    """A file (or its ``.metadata``) to serve from the blob store."""

    filename: str
    blob_key: str
    sha256: str
    size: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    """Answer ``status`` with ``reason`` in the body (404 for a hidden file, so installers
    resolve around it; 502 / 503 for upstream trouble)."""

    status: int
    reason: str


def project_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return canonicalize_name(_parse_wheel(filename)[0])
        return canonicalize_name(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def file_url(index_id: int, sha256: str, filename: str) -> str:
    """The URL a mirrored file is served at, relative to ``/simple/<project>/`` (as hosted
    files: ``../../files/<key>``; below a named index's prefix it resolves below that prefix)."""
    return "../.." + FILES_PREFIX + quote(mirror_key(index_id, sha256, filename))


class MirrorService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        trust_root: str,
        page_ttl: float,
        max_file_size: int,
        clock: Callable[[], dt.datetime] = utcnow,
        client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(timeout=timeout, headers={"User-Agent": "assay-mirror"})
        self.pages = PageCache(db, self.client, ttl=page_ttl, clock=lambda: self.clock())
        self.attestations = Attestations(db, self.client, trust_root)
        self.fetcher = FileFetcher(db, blobs, self.client, max_size=max_file_size)
        #: Kept metadata files' sizes by blob key (a blob never changes once stored).
        self._sizes: dict[str, int] = {}

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> MirrorService:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ---- policy ------------------------------------------------------------------------------

    async def _evidence(self, index_id: int, project: str, entry: UpstreamFile, sha: str, policy: Policy) -> Evidence:
        try:
            body = await self.attestations.provenance(index_id, entry, sha)
        except (httpx.HTTPError, ValueError) as exc:
            return Evidence("unavailable", detail=str(exc))
        if body is None:
            return Evidence("none")
        pin = policy.pins.get(canonicalize_name(project)) or await anyio.to_thread.run_sync(
            self.attestations.tofu_pin, index_id, canonicalize_name(project)
        )
        return await self.attestations.evidence(body, project, entry.filename, sha, pin)

    async def _all_evidence(
        self, index_id: int, project: str, page: UpstreamPage, shas: dict[str, str | None], policy: Policy
    ) -> dict[str, Evidence]:
        semaphore = asyncio.Semaphore(PAGE_CONCURRENCY)

        async def one(entry: UpstreamFile) -> tuple[str, Evidence]:
            sha = shas.get(entry.filename)
            if not sha:
                return entry.filename, Evidence("unavailable", detail="no sha256")
            async with semaphore:
                return entry.filename, await self._evidence(index_id, project, entry, sha, policy)

        return dict(await asyncio.gather(*(one(f) for f in page.files)))

    async def decisions(
        self, index_id: int, page: UpstreamPage, project: str, policy: Policy, kept: dict[str, Kept]
    ) -> list[Decision]:
        rules = policy.rules(project)
        shas = {f.filename: (kept[f.filename].sha256 if f.filename in kept else f.sha256) for f in page.files}
        evidence: dict[str, Evidence] = {}
        if not rules.listed_out and (rules.require != "none" or rules.block_lost):
            evidence = await self._all_evidence(index_id, project, page, shas, policy)
            name = canonicalize_name(project)
            if rules.tofu and name not in policy.pins:
                pinned = await anyio.to_thread.run_sync(self.attestations.tofu_pin, index_id, name)
                if pinned is None:
                    # TOFU: the oldest release whose certificates confirm its publisher block
                    # names the pin; recorded once, never changed (the DB row stands).
                    candidates = sorted(
                        (f for f in page.files if (ev := evidence.get(f.filename)) and ev.sound and ev.proposal),
                        key=lambda f: (file_version(f.filename) is None, file_version(f.filename) or 0, f.filename),
                    )
                    if candidates:
                        first = candidates[0]
                        table = evidence[first.filename].proposal
                        assert table is not None
                        if await anyio.to_thread.run_sync(
                            self.attestations.record_tofu, index_id, name, table, first.filename
                        ):
                            await anyio.to_thread.run_sync(self._audit_tofu, index_id, name, table, first.filename)
                        evidence = await self._all_evidence(index_id, project, page, shas, policy)
        return decide(page.files, shas, rules, evidence, self.clock())

    def _audit_tofu(self, index_id: int, project: str, table: dict[str, str], filename: str) -> None:
        with self.db.write() as session:
            audit.record(
                session,
                actor=ACTOR,
                action="mirror:tofu-pin",
                project=project,
                target=filename,
                details={"index_id": index_id, "pin": table},
            )

    # ---- records -----------------------------------------------------------------------------

    def _kept_files(self, index_id: int, project: str) -> dict[str, Kept]:
        with self.db.read() as session:
            rows = session.execute(
                sa.select(MirrorFile).where(MirrorFile.index_id == index_id, MirrorFile.project == project)
            ).scalars()
            return {
                r.filename: Kept(r.filename, r.sha256, r.size, r.blob_key, r.metadata_blob_key, r.metadata_sha256)
                for r in rows
            }

    def _record(
        self, index_id: int, project: str, decisions: list[Decision], conflicts: list[tuple[str, str, str]]
    ) -> None:
        """Each first decision per (file, outcome) and each hash change: a row and an audit
        event. Read first, so a page view with nothing new writes nothing."""
        with self.db.read() as session:
            known: set[tuple[str, str, str]] = set(
                session.execute(
                    sa.select(MirrorDecision.filename, MirrorDecision.sha256, MirrorDecision.outcome).where(
                        MirrorDecision.index_id == index_id, MirrorDecision.project == project
                    )
                ).all()
            )
            known_conflicts: set[tuple[str, str]] = set(
                session.execute(
                    sa.select(MirrorConflict.filename, MirrorConflict.offered_sha256).where(
                        MirrorConflict.index_id == index_id, MirrorConflict.project == project
                    )
                ).all()
            )
        new = [d for d in decisions if (d.filename, d.sha256, d.outcome) not in known]
        new_conflicts = [c for c in conflicts if (c[0], c[2]) not in known_conflicts]
        if not new and not new_conflicts:
            return
        try:
            with self.db.write() as session:
                for d in new:
                    session.add(
                        MirrorDecision(
                            index_id=index_id,
                            project=project,
                            filename=d.filename,
                            sha256=d.sha256,
                            outcome=d.outcome,
                            detail=d.detail,
                        )
                    )
                    audit.record(
                        session,
                        actor=ACTOR,
                        action="mirror:show" if d.visible else "mirror:hide",
                        project=project,
                        target=d.filename,
                        details={"index_id": index_id, "sha256": d.sha256, "reason": d.reason, "detail": d.detail},
                    )
                for filename, kept_sha, offered in new_conflicts:
                    session.add(
                        MirrorConflict(
                            index_id=index_id,
                            project=project,
                            filename=filename,
                            kept_sha256=kept_sha,
                            offered_sha256=offered,
                        )
                    )
                    audit.record(
                        session,
                        actor=ACTOR,
                        action="mirror:hash-changed",
                        project=project,
                        target=filename,
                        details={"index_id": index_id, "kept": kept_sha, "offered": offered},
                    )
                    log.warning(
                        "upstream changed the sha256 of %s from %s to %s: the new bytes are refused, "
                        "the kept ones served",
                        filename,
                        kept_sha,
                        offered,
                    )
        except sa.exc.IntegrityError:
            pass  # another worker recorded the same first decision at the same moment

    # ---- the facade --------------------------------------------------------------------------

    async def project_page(
        self, index_id: int, upstream_url: str, policy: Policy, name: str, *, base_url: str
    ) -> MirroredPage:
        """The project's page through ``policy``. ``UpstreamUnavailable`` when upstream cannot
        be reached and no copy is kept (answer 502, not a simple page)."""
        project = canonicalize_name(name)
        result = await self.pages.get(index_id, upstream_url, project)
        upstream = result.page
        if upstream is None:
            return MirroredPage(None, result.warnings, (), result.fresh_until, None)
        kept = await anyio.to_thread.run_sync(self._kept_files, index_id, project)
        conflicts = [
            (f.filename, kept[f.filename].sha256, f.sha256)
            for f in upstream.files
            if f.filename in kept and f.sha256 and f.sha256 != kept[f.filename].sha256
        ]
        decisions = await self.decisions(index_id, upstream, project, policy, kept)
        await anyio.to_thread.run_sync(self._record, index_id, project, decisions, conflicts)
        visible = {d.filename: d for d in decisions if d.visible}
        links = []
        for f in upstream.files:
            decision = visible.get(f.filename)
            if decision is None:
                continue
            held = kept.get(f.filename)
            version = file_version(f.filename)
            links.append(
                FileLink(
                    filename=f.filename,
                    url=file_url(index_id, decision.sha256, f.filename),
                    sha256=decision.sha256,
                    size=held.size if held else f.size,
                    upload_time=f.upload_time,
                    requires_python=f.requires_python,
                    yanked=f.yanked,
                    # PEP 658 / 714: a hash is known once upstream gave it or the file is held.
                    core_metadata_sha256=(held.metadata_sha256 if held else None) or f.metadata_sha256,
                    provenance_url=(
                        base_url + provenance_path(project, str(version), f.filename)
                        if f.provenance is not None and version is not None
                        else None
                    ),
                    logged=False,
                )
            )
        versions = upstream.versions or tuple(
            sorted({str(v) for f in upstream.files if (v := file_version(f.filename)) is not None})
        )
        page = ProjectPage(
            name=project,
            files=tuple(links),
            versions=versions,
            status=ProjectStatus(upstream.status, upstream.status_reason),
            serial=0,
        )
        return MirroredPage(
            page,
            result.warnings,
            tuple(decisions),
            self._valid_until(result.fresh_until, upstream, project, policy, decisions),
            upstream,
            kept,
        )

    def _valid_until(
        self,
        fresh_until: dt.datetime | None,
        upstream: UpstreamPage,
        project: str,
        policy: Policy,
        decisions: list[Decision],
    ) -> dt.datetime | None:
        """When these decisions may change by time alone (see ``MirroredPage.valid_until``)."""
        if fresh_until is None:
            return None
        until = fresh_until
        min_age = policy.rules(project).min_age
        uploaded = {f.filename: f.upload_time for f in upstream.files}
        for d in decisions:
            if d.reason == "cooldown" and min_age is not None and (at := uploaded.get(d.filename)) is not None:
                # The file ages into view at upload time + min-age, to the microsecond.
                until = min(until, at + min_age)
            elif d.reason == "provenance-unavailable":
                until = min(until, self.clock() + dt.timedelta(seconds=RETRY_UNAVAILABLE))
        return until

    async def project_names(
        self, index_id: int, upstream_url: str, known: UpstreamList | None = None, known_generation: object = None
    ) -> ListResult:
        """Upstream's project list (kept, revalidated as pages are; the caller filters it by
        its policy). ``known`` / ``known_generation``: see ``PageCache.get_list``."""
        return await self.pages.get_list(index_id, upstream_url, known, known_generation)

    async def _visible(
        self, index_id: int, upstream_url: str, policy: Policy, filename: str, decided: MirroredPage | None = None
    ) -> tuple[Decision, UpstreamFile, str, tuple[str, ...], MirroredPage] | Refused:
        project = project_of(filename)
        if project is None:
            return Refused(404, f"{filename} is not a distribution filename")
        if decided is None:
            try:
                decided = await self.project_page(index_id, upstream_url, policy, project, base_url="")
            except UpstreamUnavailable as exc:
                return Refused(502, str(exc))
        decision = next((d for d in decided.decisions if d.filename == filename), None)
        entry = decided.upstream.file(filename) if decided.upstream is not None else None
        if decision is None or entry is None:
            return Refused(404, f"{filename} is not on upstream's page for {project}")
        if not decision.visible:
            return Refused(404, f"{filename} is hidden by this index's policy ({decision.reason}): {decision.detail}")
        return decision, entry, project, decided.warnings, decided

    async def open_file(
        self, index_id: int, upstream_url: str, policy: Policy, filename: str, *, decided: MirroredPage | None = None
    ) -> Opened | Refused:
        """A file URL: ``filename`` or ``filename.metadata`` (PEP 658). Fetched from upstream and
        checked on the first download, served from the blob store afterwards. ``decided``: the
        project's page as decided under ``policy`` and still current (the caller knows nothing
        changed since), so neither is read again."""
        metadata = filename.endswith(METADATA_SUFFIX)
        dist = filename.removesuffix(METADATA_SUFFIX) if metadata else filename
        visible = await self._visible(index_id, upstream_url, policy, dist, decided)
        if isinstance(visible, Refused):
            return visible
        decision, entry, project, warnings, decided = visible
        held = decided.kept.get(dist) or await anyio.to_thread.run_sync(kept_file, self.db, index_id, dist)
        if metadata:
            if held is not None and held.metadata_blob_key is not None and held.metadata_sha256 is not None:
                size = self._sizes.get(held.metadata_blob_key)
                if size is None:
                    size = await anyio.to_thread.run_sync(_blob_size, self.blobs, held.metadata_blob_key)
                    if len(self._sizes) >= _MAX_SIZES:
                        self._sizes.clear()
                    self._sizes[held.metadata_blob_key] = size
                return Opened(filename, held.metadata_blob_key, held.metadata_sha256, size, warnings)
            if held is not None or entry.metadata_sha256 is None:
                return Refused(404, f"upstream has no metadata file for {dist}")
            got = await self._metadata(index_id, entry, decision.sha256)
            if isinstance(got, Refused):
                return got
            return Opened(filename, got.blob_key, got.sha256, got.size, warnings)
        deadline = anyio.current_time() + IN_PROGRESS_WAIT
        while held is None:
            if entry.sha256 != decision.sha256:  # pragma: no cover - decisions use upstream's sha when none is kept
                return Refused(404, f"{dist} changed upstream")
            try:
                held = await self.fetcher.fetch(index_id, project, entry)
            except FileRefused as exc:
                log.warning("mirror: refused %s: %s", dist, exc)
                return Refused(502, str(exc))
            except InProgress:
                if anyio.current_time() > deadline:
                    return Refused(503, f"{dist} is being fetched from upstream; retry shortly")
                await anyio.sleep(0.1)
                held = await anyio.to_thread.run_sync(kept_file, self.db, index_id, dist)
        return Opened(dist, held.blob_key, held.sha256, held.size, warnings)

    async def _metadata(self, index_id: int, entry: UpstreamFile, file_sha256: str) -> KeptMetadata | Refused:
        """PEP 658: the metadata file alone, so a resolver reading it does not make the mirror
        download every candidate distribution."""
        deadline = anyio.current_time() + IN_PROGRESS_WAIT
        while True:
            kept = await anyio.to_thread.run_sync(kept_metadata, self.db, index_id, entry.filename, file_sha256)
            if kept is not None:
                return kept
            try:
                return await self.fetcher.fetch_metadata(index_id, entry)
            except FileRefused as exc:
                log.warning("mirror: refused the metadata of %s: %s", entry.filename, exc)
                return Refused(502, str(exc))
            except InProgress:
                if anyio.current_time() > deadline:
                    return Refused(503, f"{entry.filename}.metadata is being fetched from upstream; retry shortly")
                await anyio.sleep(0.1)

    async def provenance(self, index_id: int, upstream_url: str, policy: Policy, filename: str) -> bytes | Refused:
        """The PEP 740 provenance upstream serves for a visible file, re-served unchanged."""
        visible = await self._visible(index_id, upstream_url, policy, filename)
        if isinstance(visible, Refused):
            return visible
        decision, entry, _project, _warnings, _decided = visible
        try:
            body = await self.attestations.provenance(index_id, entry, decision.sha256)
        except (httpx.HTTPError, ValueError) as exc:
            return Refused(502, f"upstream's provenance for {filename} could not be fetched: {exc}")
        if body is None:
            return Refused(404, f"No provenance available for {filename}")
        return body


def _blob_size(blobs: BlobStore, key: str) -> int:
    """A blob's length, from the store's own answer to a read (no path: any store)."""
    opened = blobs.open(key)
    opened.reader.close()
    return opened.size
