"""Rendered page bodies, cached as the simple pages are (``assay.index.pages.RenderCache``).

A project's pages (project, release, file) change only when its ``serial`` does, so their main
part is cached under ``(project id, serial, page, ...)``; every request reads the serial from the
database first, so a change is visible at once in every worker. The ``storage.changes`` hook
frees this process's stale entries at commit. What depends on the viewer (the signed-in name,
the CSRF token of the sign-out form) is never cached: only the page's main part is.
"""

from __future__ import annotations

from assay.index.pages import RenderCache
from assay.storage.changes import ProjectChange


class UIPages:
    def __init__(self, cache: RenderCache | None = None) -> None:
        # Smaller than the simple pages' cache: people read far fewer pages than installers.
        self.cache = cache or RenderCache(max_bytes=32 * 1024 * 1024)

    def forget(self, change: ProjectChange) -> None:
        """A ``storage.changes`` listener (registered by ``assay.app.services``)."""
        self.cache.drop("project", change.project_id)


def page_key(project_id: int, serial: int, page: str, *args: object) -> tuple[object, ...]:
    return ("project", project_id, serial, page, *args)
