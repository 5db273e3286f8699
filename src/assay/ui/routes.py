"""The web interface's routes: ``routes`` are an index's pages, mounted at the site root for the
default index and under ``/<name>/`` for a named one (``assay.app.asgi``'s per-index list; each
page resolves its index through ``common.context``); ``site_routes`` (the style sheet) are the
site's, one for every index."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from assay.ui import account, home, projects, render

_CSS = resources.files("assay.ui").joinpath("static/assay.css").read_bytes()


async def stylesheet(request: Request) -> Response:
    # Changes only with a new release of assay: cached for a day, revalidated by version.
    return Response(_CSS, media_type="text/css; charset=utf-8", headers={"cache-control": "public, max-age=86400"})


site_routes: list[BaseRoute] = [Route(render.CSS_PATH, stylesheet, methods=["GET", "HEAD"])]

routes: list[BaseRoute] = [
    Route("/", home.home, methods=["GET", "HEAD"]),
    Route("/search/", home.search, methods=["GET", "HEAD"]),
    Route("/account/", account.account, methods=["GET", "HEAD"]),
    Route("/account/login", account.login_form, methods=["GET", "HEAD"]),
    Route("/account/login", account.login, methods=["POST"]),
    Route("/account/logout", account.logout, methods=["POST"]),
    Route("/project/{project}", projects.project_page, methods=["GET", "HEAD"]),
    Route("/project/{project}/", projects.project_page, methods=["GET", "HEAD"]),
    Route("/project/{project}/{version}/", projects.release_page, methods=["GET", "HEAD"]),
    Route("/project/{project}/{version}", projects.release_page, methods=["GET", "HEAD"]),
    Route("/project/{project}/{version}/{filename}/", projects.file_page, methods=["GET", "HEAD"]),
    Route("/project/{project}/{version}/{filename}", projects.file_page, methods=["GET", "HEAD"]),
]
