"""What the read path needs from the application: the interface its routes ask for.

The composition root (``assay.app``) builds one object that provides this and the other
capabilities' interfaces; a route reads it from the app state and never builds a service.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from assay.config import Settings
from assay.index.filesend import FileCache
from assay.index.mirrors import Mirrors
from assay.index.pages import SimplePages
from assay.index.serials import Serials
from assay.indexes import Indexes
from assay.storage.blobs import BlobStore
from assay.storage.db import Database


class IndexServices(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def indexes(self) -> Indexes: ...
    @property
    def blobs(self) -> BlobStore: ...
    @property
    def pages(self) -> SimplePages: ...
    @property
    def serials(self) -> Serials: ...
    @property
    def mirrors(self) -> Mirrors: ...
    @property
    def files(self) -> FileCache: ...
    def base_url(self, request: Request) -> str: ...


def index_services(request: Request) -> IndexServices:
    # The app state is untyped; ``assay.app.services`` checks statically that what it stores
    # there provides this interface.
    svc: IndexServices = request.app.state.services
    return svc
