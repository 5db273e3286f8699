"""Upstream pages kept in the database: served while fresh (``mirror_page_ttl``), then
revalidated (If-None-Match / If-Modified-Since; a 304 renews the kept page), and served as
kept, with a warning, when upstream is unreachable (issue 12, item 4)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import httpx
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from assay.mirror.upstream import (
    Fetched,
    FetchedList,
    UpstreamError,
    UpstreamList,
    UpstreamPage,
    fetch_list,
    fetch_page,
)
from assay.storage.db import Database
from assay.storage.models import MirrorPage

log = logging.getLogger(__name__)


class UpstreamUnavailable(Exception):
    """Upstream cannot be reached and nothing is kept for the page: the route answers 502
    with this message (never an error page in place of a simple page)."""


@dataclass(frozen=True)
class KeptPage:
    page: UpstreamPage | None
    etag: str | None
    last_modified: str | None
    fetched: dt.datetime


@dataclass(frozen=True)
class PageResult:
    #: None: upstream has no such project.
    page: UpstreamPage | None
    #: Non-empty when the page is served stale because upstream is unreachable.
    warnings: tuple[str, ...]
    #: Whether upstream was asked (a miss, or a revalidation) during this call.
    asked_upstream: bool
    #: Until when (the engine's clock) the page stands without asking upstream again; None
    #: for a stale page (each request tries upstream again).
    fresh_until: dt.datetime | None = None


#: The project list's row in ``mirror_pages``: "/" is never a normalized project name.
LIST_KEY = "/"


@dataclass(frozen=True)
class ListResult:
    names: UpstreamList
    warnings: tuple[str, ...]
    #: What identifies this list's content: its validators (unchanged by a 304), else when it
    #: was fetched. A reader keeps what it derived from the list while this stays the same.
    generation: tuple[str | None, str | None, str]
    fresh_until: dt.datetime | None


class PageCache:
    def __init__(
        self, db: Database, client: httpx.AsyncClient, *, ttl: float, clock: Callable[[], dt.datetime]
    ) -> None:
        self.db = db
        self.client = client
        self.ttl = dt.timedelta(seconds=ttl)
        self.clock = clock

    def _load(self, index_id: int, upstream: str, project: str) -> KeptPage | None:
        with self.db.read() as session:
            row = session.execute(
                sa.select(MirrorPage).where(
                    MirrorPage.index_id == index_id, MirrorPage.upstream == upstream, MirrorPage.project == project
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            page = UpstreamPage.model_validate(row.page) if row.page is not None else None
            return KeptPage(page, row.etag, row.last_modified, row.fetched)

    def _save(self, index_id: int, upstream: str, project: str, fetched: Fetched, now: dt.datetime) -> None:
        page = fetched.page.model_dump(mode="json") if fetched.page is not None else None
        self._store(index_id, upstream, project, fetched.not_modified, page, fetched.etag, fetched.last_modified, now)

    def _store(
        self,
        index_id: int,
        upstream: str,
        project: str,
        not_modified: bool,
        page: dict[str, object] | None,
        etag: str | None,
        last_modified: str | None,
        now: dt.datetime,
    ) -> None:
        values: dict[str, object] = {"fetched": now}
        if not not_modified:
            values |= {"page": page, "etag": etag, "last_modified": last_modified}
        where = (MirrorPage.index_id == index_id, MirrorPage.upstream == upstream, MirrorPage.project == project)
        for _ in range(3):
            try:
                with self.db.write() as session:
                    done = session.execute(sa.update(MirrorPage).where(*where).values(**values)).rowcount  # type: ignore[attr-defined]
                    if not done:
                        session.add(MirrorPage(index_id=index_id, upstream=upstream, project=project, **values))
                return
            except IntegrityError:
                continue  # another worker inserted it first: update theirs

    async def get(self, index_id: int, upstream: str, project: str) -> PageResult:
        now = self.clock()
        kept = await anyio.to_thread.run_sync(self._load, index_id, upstream, project)
        if kept is not None and now - kept.fetched < self.ttl:
            return PageResult(kept.page, (), False, kept.fetched + self.ttl)
        try:
            fetched = await fetch_page(
                self.client,
                upstream,
                project,
                etag=kept.etag if kept and kept.page is not None else None,
                last_modified=kept.last_modified if kept and kept.page is not None else None,
            )
        except UpstreamError as exc:
            if kept is None:
                raise UpstreamUnavailable(f"{exc}; no copy of the page is kept") from None
            warning = f"upstream unreachable ({exc}); serving the page as fetched at {kept.fetched.isoformat()}"
            log.warning("mirror %s project %s: %s", upstream, project, warning)
            return PageResult(kept.page, (warning,), True)
        await anyio.to_thread.run_sync(self._save, index_id, upstream, project, fetched, now)
        if fetched.not_modified and kept is not None:
            return PageResult(kept.page, (), True, now + self.ttl)
        return PageResult(fetched.page, (), True, now + self.ttl)

    # ---- the project list ----------------------------------------------------------------

    def _list_validators(self, index_id: int, upstream: str) -> tuple[str | None, str | None, dt.datetime] | None:
        """The kept list's validators and fetch time, without its (possibly large) body."""
        with self.db.read() as session:
            row = session.execute(
                sa.select(MirrorPage.etag, MirrorPage.last_modified, MirrorPage.fetched).where(
                    MirrorPage.index_id == index_id, MirrorPage.upstream == upstream, MirrorPage.project == LIST_KEY
                )
            ).one_or_none()
        return (row[0], row[1], row[2]) if row is not None else None

    def _load_list(self, index_id: int, upstream: str) -> UpstreamList | None:
        with self.db.read() as session:
            body = session.execute(
                sa.select(MirrorPage.page).where(
                    MirrorPage.index_id == index_id, MirrorPage.upstream == upstream, MirrorPage.project == LIST_KEY
                )
            ).scalar_one_or_none()
        return UpstreamList.model_validate(body) if body is not None else None

    def _list_generation(
        self, validators: tuple[str | None, str | None, dt.datetime]
    ) -> tuple[str | None, str | None, str]:
        etag, last_modified, fetched = validators
        # A 304 renews ``fetched`` but not the content: with validators, they name the content.
        return (etag, last_modified, "" if etag or last_modified else fetched.isoformat())

    async def get_list(
        self, index_id: int, upstream: str, known: UpstreamList | None, known_generation: object
    ) -> ListResult:
        """Upstream's project list, kept and revalidated as pages are (``mirror_page_ttl``,
        ETag / Last-Modified). ``known`` is what the caller derived from an earlier answer of
        generation ``known_generation``: when that is still the kept list's, its body is not
        read again (a big index's list is tens of MiB). Upstream unreachable: the kept list
        with a warning (an empty one when none is kept)."""
        now = self.clock()
        validators = await anyio.to_thread.run_sync(self._list_validators, index_id, upstream)

        async def kept_list() -> UpstreamList:
            assert validators is not None
            if known is not None and self._list_generation(validators) == known_generation:
                return known
            return await anyio.to_thread.run_sync(self._load_list, index_id, upstream) or UpstreamList(names=())

        if validators is not None and now - validators[2] < self.ttl:
            names = await kept_list()
            return ListResult(names, (), self._list_generation(validators), validators[2] + self.ttl)
        etag, last_modified = (validators[0], validators[1]) if validators is not None else (None, None)
        try:
            fetched: FetchedList = await fetch_list(self.client, upstream, etag=etag, last_modified=last_modified)
        except UpstreamError as exc:
            if validators is None:
                warning = f"upstream's project list is unavailable ({exc}); none is kept: local names only"
                log.warning("mirror %s: %s", upstream, warning)
                return ListResult(UpstreamList(names=()), (warning,), (None, None, "none"), None)
            warning = (
                f"upstream unreachable ({exc}); serving its project list as fetched at {validators[2].isoformat()}"
            )
            log.warning("mirror %s: %s", upstream, warning)
            return ListResult(await kept_list(), (warning,), self._list_generation(validators), None)
        body = fetched.names.model_dump(mode="json") if fetched.names is not None else None
        await anyio.to_thread.run_sync(
            self._store,
            index_id,
            upstream,
            LIST_KEY,
            fetched.not_modified,
            body,
            fetched.etag,
            fetched.last_modified,
            now,
        )
        if fetched.not_modified and validators is not None:
            return ListResult(await kept_list(), (), self._list_generation(validators), now + self.ttl)
        names = fetched.names or UpstreamList(names=())  # a 304 to an unconditional request: nothing
        generation = self._list_generation((fetched.etag, fetched.last_modified, now))
        return ListResult(names, (), generation, now + self.ttl)
