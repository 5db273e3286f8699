"""The services a request handler may use, built once per worker from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from assay.config import Settings
from assay.index.pages import SimplePages
from assay.index.serials import Serials, serials_for
from assay.storage.blobs import BlobStore, FilesystemBlobStore
from assay.storage.db import Database
from assay.upload.service import Uploader


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    pages: SimplePages
    serials: Serials
    uploader: Uploader
    #: Capability-specific services registered by their modules (publishing, attestations).
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(
            settings.resolved_database_url,
            statement_timeout=settings.db_statement_timeout,
            pool_timeout=settings.db_pool_timeout,
        )
        blobs = FilesystemBlobStore(settings.blob_dir)
        return cls(
            settings=settings,
            db=db,
            blobs=blobs,
            pages=SimplePages(),
            serials=serials_for(db),
            uploader=Uploader(db, blobs),
        )

    def base_url(self, request: Request) -> str:
        """scheme://host[:port] for absolute URLs: the configured one, else this request's.

        Read from the ASGI scope: building ``request.url`` (a parsed URL object) costs more than
        the rest of a cached simple-page request."""
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        scope = request.scope
        host = request.headers.get("host")
        if not host:
            server = scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else "localhost"
        return f"{scope['scheme']}://{host}"


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
