"""An index's home page (``/`` for the default index, ``/<name>/`` for a named one) and search
(``[/<name>]/search/?q=``)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from assay import __version__
from assay.ui import data, render
from assay.ui.common import Context, context, readable

#: Longest search accepted (characters).
MAX_QUERY = 200


def _shown_url(url: str) -> str:
    """An upstream's URL without any user:password in it (a mirror's URL may carry them)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def mirror_notice(ctx: Context) -> str:
    """A mirror index (issue 12) has no pages of its own: what it serves comes from upstream,
    through its policy, by the simple API only. Its pages say so instead of showing nothing."""
    assert ctx.index.mirror_url is not None
    return render.fragment(
        "mirror.html", index=ctx.index, upstream=_shown_url(ctx.index.mirror_url), prefix=ctx.prefix,
        base=ctx.svc.base_url(ctx.request),
    )


async def home(request: Request) -> Response:
    """The version, the simple index and upload URLs (what the page always showed, for tools and
    people setting them up) and the search form. It reads the database only for a signed-in
    browser, so it keeps answering while the database is down (issue 10, item 11)."""
    ctx = await context(request)
    shown = not ctx.is_private() or ctx.viewer is not None
    main = render.fragment(
        "home.html",
        version=__version__,
        base=ctx.svc.base_url(request),
        prefix=ctx.prefix,
        index=ctx.index,
        show_search=shown and not ctx.index.is_mirror,
        # A mirror says what it mirrors, a layered index over which mirrors (issue 12); a private
        # index says neither to anyone not signed in on it.
        mirror=shown and ctx.index.is_mirror,
        upstream=_shown_url(ctx.index.mirror_url) if ctx.index.mirror_url else "",
        bases=ctx.index.bases if shown else (),
    )
    return ctx.page(main, title="Home" if ctx.index.is_default else ctx.index.name)


async def search(request: Request) -> Response:
    ctx, denied = await readable(request)
    if denied is not None:
        return denied
    if ctx.index.is_mirror:
        return ctx.page(mirror_notice(ctx), title="Mirror", status_code=404)
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
                return data.search(session, query, ctx.index.id)

        hits, more = await run_in_threadpool(run)
    main = render.fragment("search.html", query=query, hits=hits, more=more, prefix=ctx.prefix)
    return ctx.page(main, title=f"Search: {query}" if query else "Search")
