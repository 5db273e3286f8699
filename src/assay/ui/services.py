"""What the web pages need from the application: the interface their routes ask for.

As ``assay.index.services``: the composition root (``assay.app``) provides it, a route reads it
from the app state and never builds a service.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from assay.config import Settings
from assay.indexes import Indexes
from assay.storage.db import Database
from assay.ui.cache import UIPages


class UIServices(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def indexes(self) -> Indexes: ...
    @property
    def ui_pages(self) -> UIPages: ...
    def base_url(self, request: Request) -> str: ...


def ui_services(request: Request) -> UIServices:
    # The app state is untyped; ``assay.app.services`` checks statically that what it stores
    # there provides this interface.
    svc: UIServices = request.app.state.services
    return svc
