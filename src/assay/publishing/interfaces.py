"""What the Trusted Publishing routes need from the application (see ``assay.app``)."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from assay.config import Settings
from assay.indexes import Indexes
from assay.publishing.service import TrustedPublishing
from assay.storage.db import Database


class PublishingServices(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def indexes(self) -> Indexes: ...
    @property
    def trusted_publishing(self) -> TrustedPublishing: ...
    def base_url(self, request: Request) -> str: ...


def publishing_services(request: Request) -> PublishingServices:
    # Checked statically in ``assay.app.services``.
    svc: PublishingServices = request.app.state.services
    return svc
