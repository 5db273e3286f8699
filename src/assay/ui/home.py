"""The home page (``/``) and search (``/search/?q=``)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from assay import __version__
from assay.ui import data, render
from assay.ui.common import context, readable

#: Longest search accepted (characters).
MAX_QUERY = 200


async def home(request: Request) -> Response:
    """The version, the simple index and upload URLs (what the page always showed, for tools and
    people setting them up) and the search form. It reads the database only for a signed-in
    browser, so it keeps answering while the database is down (issue 10, item 11)."""
    ctx = await context(request)
    show_search = not ctx.svc.indexes.default().is_private(ctx.svc.settings.private) or ctx.viewer is not None
    main = render.fragment(
        "home.html", version=__version__, base=ctx.svc.base_url(request), show_search=show_search
    )
    return ctx.page(main, title="Home")


async def search(request: Request) -> Response:
    ctx, denied = await readable(request)
    if denied is not None:
        return denied
    query = request.query_params.get("q", "").strip()
    if len(query) > MAX_QUERY:
        return ctx.error(400, "Search too long", f"A search may have at most {MAX_QUERY} characters.")
    if any(ord(c) < 32 for c in query):
        return ctx.error(400, "Bad search", "A search may not contain control characters.")
    hits: list[data.Hit] = []
    more = False
    if query:

        def run() -> tuple[list[data.Hit], bool]:
            with ctx.svc.db.read() as session:
                return data.search(session, query)

        hits, more = await run_in_threadpool(run)
    main = render.fragment("search.html", query=query, hits=hits, more=more)
    return ctx.page(main, title=f"Search: {query}" if query else "Search")
