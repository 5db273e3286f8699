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

from assay.mirror.upstream import Fetched, UpstreamError, UpstreamPage, fetch_page
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
        values: dict[str, object] = {"fetched": now}
        if not fetched.not_modified:
            values |= {
                "page": fetched.page.model_dump(mode="json") if fetched.page is not None else None,
                "etag": fetched.etag,
                "last_modified": fetched.last_modified,
            }
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
            return PageResult(kept.page, (), False)
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
            return PageResult(kept.page, (), True)
        return PageResult(fetched.page, (), True)
