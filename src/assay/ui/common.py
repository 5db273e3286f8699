"""What every page handler does first: who is viewing, may they, and the page around the
main part."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from assay.indexes import IndexRef
from assay.storage.models import DEFAULT_INDEX_NAME
from assay.ui import render, session
from assay.ui.services import UIServices, ui_services
from assay.web.access import check_read_access


@dataclass
class Context:
    svc: UIServices
    request: Request
    #: The index whose pages these are: the default at the site root, a named one under
    #: ``/<name>/`` (every link of a page starts with its ``prefix``).
    index: IndexRef
    viewer: session.Viewer | None
    csrf: str
    new_csrf: bool

    @property
    def prefix(self) -> str:
        return self.index.prefix

    def page(self, main: str, *, title: str, status_code: int = 200) -> Response:
        response = render.page(
            main, title=title, viewer=self.viewer, csrf=self.csrf, prefix=self.prefix, index=self.index,
            status_code=status_code,
        )
        if self.new_csrf:
            session.set_csrf_cookie(response, self.svc, self.request, self.csrf)
        return response

    def error(self, status_code: int, heading: str, message: str) -> Response:
        main = render.fragment("error.html", heading=heading, message=message)
        return self.page(main, title=heading, status_code=status_code)

    def sign_in_page(self, message: str | None = None, status_code: int = 200) -> Response:
        main = render.fragment(
            "signin.html", csrf=self.csrf, message=message, prefix=self.prefix, index=self.index
        )
        return self.page(main, title="Sign in", status_code=status_code)

    def is_private(self) -> bool:
        return self.index.is_private(self.svc.settings.private)


def request_index(svc: UIServices, request: Request) -> IndexRef:
    """The index a route is mounted for: ``/{index}/...`` names it (``assay.app.asgi.IndexMount``
    mounts the pages only for an index that exists), the site root is the default index's."""
    name = request.path_params.get("index")
    if not name or name == DEFAULT_INDEX_NAME:
        return svc.indexes.default()
    ref = svc.indexes.by_name(str(name))
    if ref is None:  # deleted since the mount matched: an ordinary 404
        raise HTTPException(404)
    return ref


async def context(request: Request) -> Context:
    svc = ui_services(request)
    index = request_index(svc, request)
    csrf, new = session.csrf_token(request)
    who = None
    if request.cookies.get(session.cookie_name(index)):
        who = await run_in_threadpool(session.viewer, svc, request, index)
    return Context(svc, request, index, who, csrf, new)


async def readable(request: Request) -> tuple[Context, Response | None]:
    """The context, and on a private index without a signed-in person (or a valid token in the
    Authorization header, for scripts) the sign-in page, answered 401: nothing else is shown."""
    ctx = await context(request)
    # A session is one index's (``session.viewer``): signed in on another index is signed out here.
    if not ctx.is_private() or ctx.viewer is not None:
        return ctx, None
    if (
        request.headers.get("authorization")
        and await run_in_threadpool(check_read_access, request, ctx.svc, ctx.index) is None
    ):
        return ctx, None
    return ctx, ctx.sign_in_page("This index is private: sign in to see it.", status_code=401)
