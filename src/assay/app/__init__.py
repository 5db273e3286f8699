"""The composition root: builds every service once per worker from the settings and assembles
the ASGI application from each capability's routes. The only package that knows them all;
``web/`` below it is HTTP plumbing, and each capability's routes ask for the interface they
need (``index.services``, ``upload.interfaces``, ``publishing.interfaces``)."""

from __future__ import annotations

from assay.app.asgi import app_from_env, create_app
from assay.app.services import Services, build_services

__all__ = ["Services", "app_from_env", "build_services", "create_app"]
