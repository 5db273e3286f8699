"""Trusted Publishing: exchange a CI job's OIDC token for a short-lived upload token, for any
OIDC issuer an admin trusts (PyPI's ``/_/oidc/`` API and the PEP 807 draft)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily: the verify client uses assay.attestations without a server
    from starlette.routing import BaseRoute

    from assay.web.services import Services


def install(svc: Services) -> list[BaseRoute]:
    from assay.publishing.routes import routes
    from assay.publishing.service import TrustedPublishing

    svc.extra["trusted_publishing"] = TrustedPublishing(svc.db, svc.settings)
    return list(routes)
