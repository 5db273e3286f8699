"""What the stage routes need from the application."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from assay.config import Settings
from assay.indexes import Indexes
from assay.log.routes import LogService
from assay.storage.blobs import BlobStore
from assay.storage.db import Database


class StageServices(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def indexes(self) -> Indexes: ...
    @property
    def blobs(self) -> BlobStore: ...
    @property
    def log(self) -> LogService: ...
    def base_url(self, request: Request) -> str: ...


def stage_services(request: Request) -> StageServices:
    # Checked statically in ``assay.app.services``.
    svc: StageServices = request.app.state.services
    return svc
