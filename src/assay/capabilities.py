"""Capabilities beyond the index core register their services and routes here.

Each capability (Trusted Publishing, attestations, the transparency log) exposes ``install(services) -> routes``; the
app calls them in order. Keeping the list in one place makes the application's shape visible.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from assay import attestations, publishing
from assay.log import routes as log_routes
from assay.web.services import Services


def install_capabilities(svc: Services) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    routes += publishing.install(svc)
    routes += attestations.install(svc)
    routes += log_routes.install(svc)
    return routes
