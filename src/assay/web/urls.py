"""Absolute URLs for responses that must carry them (PEP 740 provenance URLs, PEP 807 discovery)."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.types import Scope

from assay.config import Settings
from assay.indexes import IndexRef


class HasBaseUrl(Protocol):
    """What every capability's services offer: the site's absolute base for a request."""

    def base_url(self, request: Request) -> str: ...


def base_url(settings: Settings, request: Request) -> str:
    """scheme://host[:port] for absolute URLs: the configured one, else this request's.

    Read from the ASGI scope: building ``request.url`` (a parsed URL object) costs more than
    the rest of a cached simple-page request."""
    return scope_base_url(settings, request.scope, request.headers.get("host"))


def scope_base_url(settings: Settings, scope: Scope, host: str | None) -> str:
    """``base_url`` from the ASGI scope and its (first) Host header, for code in front of the
    Starlette stack (``index.fastpath``), which keys cached pages by the same base."""
    if settings.base_url:
        return settings.base_url.rstrip("/")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    return f"{scope['scheme']}://{host}"


def index_url(svc: HasBaseUrl, request: Request, index: IndexRef) -> str:
    """The index's own absolute URL: the site's base and the index's path (``…/team``).

    The root of its ``simple/``, ``legacy/``, ``files/``, ``integrity/`` and ``stage/`` URLs."""
    return svc.base_url(request) + index.prefix
