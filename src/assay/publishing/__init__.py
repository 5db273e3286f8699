"""Trusted Publishing: exchange a CI job's OIDC token for a short-lived upload token, for any
OIDC issuer an admin trusts (PyPI's ``/_/oidc/`` API and the PEP 807 draft).

Nothing is imported here: the client (``assay publish``) and ``assay.attestations`` use parts of
this package without a server. The application (``assay.app``) builds ``service.TrustedPublishing``
and mounts ``routes.routes``; the routes ask for ``interfaces.PublishingServices``."""
