"""PEP 740 attestations: verified at upload against the publisher, stored as provenance, served
through the Integrity API and the simple pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily: the verify client uses assay.attestations without a server
    from starlette.routing import BaseRoute

    from assay.web.services import Services


def install(svc: Services) -> list[BaseRoute]:
    from assay.attestations.deferred import DeferredAttestationCheck
    from assay.attestations.routes import routes

    # One trust root, and so one sigstore verifier, per worker, loaded by the first upload with
    # attestations (see assay.attestations.deferred). PyPI: the production root; "staging", or
    # an organisation's own trusted_root.json, by setting.
    svc.extra.setdefault("upload_checks", []).append(
        DeferredAttestationCheck(
            svc.db, svc.settings.sigstore_trust_root, token_uploads=svc.settings.token_upload_attestations
        )
    )
    return list(routes)
