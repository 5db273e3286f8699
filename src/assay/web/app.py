"""The ASGI application: every capability's routes over one set of services."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from html import escape

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from assay import __version__
from assay.config import Settings, load_settings
from assay.index.routes import routes as index_routes
from assay.storage import recovery
from assay.upload.routes import routes as upload_routes
from assay.web import reason
from assay.web.hosts import allowed_hosts
from assay.web.responses import TextError
from assay.web.security import BodyLimits, SecurityHeaders
from assay.web.services import Services, services

log = logging.getLogger("assay")


def _home(request: Request) -> Response:
    svc = services(request)
    base = escape(svc.base_url(request))
    return HTMLResponse(
        "<!DOCTYPE html>\n<html><head><title>assay</title></head><body>\n"
        f"<h1>assay {escape(__version__)}</h1>\n"
        f'<p>Simple index: <a href="/simple/">{base}/simple/</a></p>\n'
        f"<p>Upload URL: <code>{base}/legacy/</code></p>\n"
        "</body></html>\n"
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "Not Found", 405: "Method Not Allowed"}
    headers = dict(exc.headers) if exc.headers else None
    return TextError(exc.status_code, messages.get(exc.status_code, str(exc.detail)), headers=headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return TextError(500, "Internal server error; the details are in the server's log.")


class _App(Starlette):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's error middleware, so a 500 gets the security headers too.
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: Settings, svc: Services | None = None) -> Starlette:
    reason.install()
    svc = svc or Services.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Finish what a killed process left half done (journaled blobs, staging files).
        await run_in_threadpool(recovery.recover, svc.db, svc.blobs)
        # What start-up built (modules, compiled statements, the ORM's mappers) lives as long as
        # the process; frozen, it is no longer walked by every full collection, which otherwise
        # shows up as the slowest requests under load (the gc.freeze documentation's own advice).
        gc.collect()
        gc.freeze()
        yield
        svc.db.dispose()

    from assay.capabilities import install_capabilities

    extra_routes = install_capabilities(svc)
    app = _App(
        routes=[Route("/", _home, methods=["GET", "HEAD"]), *index_routes, *upload_routes, *extra_routes],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
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
