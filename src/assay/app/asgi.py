"""The ASGI application: every capability's routes over one set of services."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Scope

from assay.app.services import Services, build_services
from assay.attestations.routes import routes as attestation_routes
from assay.config import Settings, load_settings
from assay.index.fastpath import ReadFastPath, root_segments
from assay.index.mirrored import routes as mirrored_routes
from assay.index.receipts import receipt_routes
from assay.index.routes import routes as index_routes
from assay.log.routes import routes as log_routes
from assay.publishing.routes import routes as publishing_routes
from assay.publishing.routes import site_routes as publishing_site_routes
from assay.rebuilds.routes import routes as rebuild_routes
from assay.stages import store as stage_store
from assay.stages.preview import routes as stage_preview_routes
from assay.stages.routes import routes as stage_routes
from assay.storage import recovery
from assay.storage.models import DEFAULT_INDEX_NAME
from assay.ui.routes import routes as ui_routes
from assay.ui.routes import site_routes as ui_site_routes
from assay.upload.routes import routes as upload_routes
from assay.web import errors, reason
from assay.web.errors import KeepConnection
from assay.web.hosts import allowed_hosts
from assay.web.responses import TextError
from assay.web.security import BodyLimits, SecurityHeaders

log = logging.getLogger("assay")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "Not Found", 405: "Method Not Allowed"}
    headers = dict(exc.headers) if exc.headers else None
    return TextError(exc.status_code, messages.get(exc.status_code, str(exc.detail)), headers=headers)


#: Seconds between two attempts to finish the clean-ups a database outage interrupted.
SWEEP_INTERVAL = 2.0


async def _sweep_forever(svc: Services) -> None:
    """Issue 10, item 10: once the database is back, the journal entries and blobs of uploads
    that failed during the outage are removed by this live process (``Uploader.sweep``), not
    left until a restart. Costs nothing while there is nothing to sweep."""
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        if svc.uploader.claims.unfinished:
            try:
                await run_in_threadpool(svc.uploader.sweep)
            except Exception:  # pragma: no cover - sweep() catches what the database raises
                log.exception("sweeping after failed uploads")


#: Seconds between two purges of expired stages (issue 14). Readers never see an expired stage
#: whatever the purge's timing (each query filters on the expiry); this frees its blobs.
STAGE_PURGE_INTERVAL = 60.0


async def _purge_stages_forever(svc: Services) -> None:
    while True:
        try:
            await run_in_threadpool(stage_store.purge_expired, svc.db, svc.blobs)
        except Exception as exc:  # the database away: the next round tries again
            log.warning("purging expired stages failed (retried in %.0f s): %s", STAGE_PURGE_INTERVAL, exc)
        await asyncio.sleep(STAGE_PURGE_INTERVAL)


class IndexMount(Mount):
    """``/{index}/...``: matches only when the first segment names an existing index (other
    than the default, which lives at the root), so an unknown path stays an ordinary 404 and
    is never redirected to ``path/`` or answered by an index's routes."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.NONE:
            return match, child
        name = child.get("path_params", {}).get("index")
        svc: Services = scope["app"].state.services
        if name == DEFAULT_INDEX_NAME or svc.indexes.by_name(str(name)) is None:
            return Match.NONE, {}
        return match, child


class _App(Starlette):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's error middleware, so a 500 gets the security headers too, and the
        # connection survives it (assay.web.errors.KeepConnection).
        full = SecurityHeaders(KeepConnection(super().build_middleware_stack()))
        # Issue 17, item 3: cache hits of simple pages and files are answered in front of it
        # all, with the same headers, host check and limits (assay.index.fastpath).
        svc: Services = self.state.services
        roots = root_segments([getattr(r, "path", "") for r in self.router.routes if not isinstance(r, IndexMount)])
        self.fast_path = ReadFastPath(full, svc, roots)
        return self.fast_path

    @property
    def wire_lane(self) -> ReadFastPath | None:
        """The lane ``web.protocol`` asks for answers it writes itself (``web.wire``); None
        until the middleware stack is built (at start-up)."""
        return getattr(self, "fast_path", None)


def create_app(settings: Settings, svc: Services | None = None) -> Starlette:
    reason.install()
    svc = svc or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Finish what a killed process left half done (journaled blobs, staging files).
        await run_in_threadpool(recovery.recover, svc.db, svc.blobs)
        # What start-up built (modules, compiled statements, the ORM's mappers) lives as long as
        # the process; frozen, it is no longer walked by every full collection, which otherwise
        # shows up as the slowest requests under load (the gc.freeze documentation's own advice).
        gc.collect()
        gc.freeze()
        sweeper = asyncio.create_task(_sweep_forever(svc))
        purger = asyncio.create_task(_purge_stages_forever(svc))
        yield
        sweeper.cancel()
        purger.cancel()
        await svc.mirror_engine.aclose()
        svc.close()

    # What every index serves: the default index's at the site root, a named index's under
    # /<name>/ (issue 11, part 3). A handler reads the ``index`` path parameter (absent at the
    # root: the default index) through ``assay.web.access``.
    per_index: list[BaseRoute] = [
        *receipt_routes,  # /files/<key>.tlog-proof, before /files/{key:path}
        *mirrored_routes,  # /files/mirror/..., before /files/{key:path}
        *index_routes,
        *upload_routes,
        *publishing_routes,
        *attestation_routes,
        # Issue 14, item 4: rebuild reports beside the provenance (/integrity/.../rebuilds).
        *rebuild_routes,
        *log_routes,
        # Issue 14: the maintainers' /_/releases/ API and the stages' preview indexes.
        *stage_routes,
        *stage_preview_routes,
        # The pages for people (issue 15): /, /search/, /project/..., /account/...; a named
        # index's at /<name>/, /<name>/search/, ... (the site root's / is the default index's home).
        *ui_routes,
    ]
    app = _App(
        routes=[
            # The read path first (issue 17): Starlette tries routes in order, and the ~20 site
            # routes before /simple/ cost ~11 us per page request. No path matches routes of
            # two of these groups, so the order changes nothing else.
            *per_index,
            # The pages' style sheet, one for every index (/_/static/assay.css).
            *ui_site_routes,
            *publishing_site_routes,
            # Last: a first segment no site-root route claims names an index.
            IndexMount("/{index}", routes=per_index),
        ],
        # Outages (database, storage) answer 503/507 and everything else 500: assay.web.errors.
        exception_handlers={
            HTTPException: _http_error,
            **dict.fromkeys(errors.HANDLED, errors.outage_error),
            Exception: errors.server_error,
        },
        # Inside the exception middleware's reach: a refused body becomes an ordinary 408/413.
        middleware=[
            # Before anything reads the request: a forged Host never reaches a handler.
            Middleware(allowed_hosts, settings=settings),
            Middleware(
                BodyLimits,
                max_body=settings.max_request_body,
                timeout=settings.body_timeout,
                min_rate=settings.body_min_rate,
            )
        ],
        lifespan=lifespan,
    )
    app.state.services = svc
    return app


def app_from_env() -> Starlette:
    """Factory for uvicorn workers: settings come from the ASSAY_* environment."""
    return create_app(load_settings())
