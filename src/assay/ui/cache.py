"""Rendered page bodies, cached as the simple pages are (``assay.index.pages.RenderCache``).

A project's pages (project, release, file) change only when its ``serial`` does, so their main
part is cached under ``(project id, serial, page, ...)``; every request reads the serial from the
database first, so a change is visible at once in every worker. The ``storage.changes`` hook
frees this process's stale entries at commit. What depends on the viewer (the signed-in name,
the CSRF token of the sign-out form) is never cached: only the page's main part is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from assay.index.pages import RenderCache
from assay.storage.changes import ProjectChange

#: Loaded projects kept (release rows and provenance states), for the pages of one project.
LOADED_PROJECTS = 64


class UIPages:
    def __init__(self, cache: RenderCache | None = None) -> None:
        # Smaller than the simple pages' cache: people read far fewer pages than installers.
        self.cache = cache or RenderCache(max_bytes=32 * 1024 * 1024)
        # A project's release rows and provenance states, under (project id, serial): loading
        # them reads every file's provenance, and the project, release and file pages of one
        # serial all need them.
        self._loaded: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def loaded(self, project_id: int, serial: int) -> Any:
        with self._lock:
            value = self._loaded.get((project_id, serial))
            if value is not None:
                self._loaded.move_to_end((project_id, serial))
            return value

    def keep(self, project_id: int, serial: int, value: Any) -> None:
        with self._lock:
            self._loaded[(project_id, serial)] = value
            while len(self._loaded) > LOADED_PROJECTS:
                self._loaded.popitem(last=False)

    def forget(self, change: ProjectChange) -> None:
        """A ``storage.changes`` listener (registered by ``assay.app.services``)."""
        self.cache.drop("project", change.project_id)
        with self._lock:
            for key in [k for k in self._loaded if k[0] == change.project_id]:
                del self._loaded[key]


def page_key(project_id: int, serial: int, page: str, *args: object) -> tuple[object, ...]:
    return ("project", project_id, serial, page, *args)
