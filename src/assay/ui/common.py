"""What every page handler does first: who is viewing, may they, and the page around the
main part."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from assay.ui import render, session
from assay.ui.services import UIServices, ui_services
from assay.web.access import check_read_access


@dataclass
class Context:
    svc: UIServices
    request: Request
    viewer: session.Viewer | None
    csrf: str
    new_csrf: bool

    def page(self, main: str, *, title: str, status_code: int = 200) -> Response:
        response = render.page(main, title=title, viewer=self.viewer, csrf=self.csrf, status_code=status_code)
        if self.new_csrf:
            session.set_csrf_cookie(response, self.svc, self.request, self.csrf)
        return response

    def error(self, status_code: int, heading: str, message: str) -> Response:
        main = render.fragment("error.html", heading=heading, message=message)
        return self.page(main, title=heading, status_code=status_code)

    def sign_in_page(self, message: str | None = None, status_code: int = 200) -> Response:
        main = render.fragment("signin.html", csrf=self.csrf, message=message)
        return self.page(main, title="Sign in", status_code=status_code)


def index_name(request: Request) -> str | None:
    """The index a route is mounted for (``/{index}/...``, issue 11); None: the default one,
    the only one served today."""
    value = request.path_params.get("index")
    return str(value) if value else None


async def context(request: Request) -> Context:
    svc = ui_services(request)
    csrf, new = session.csrf_token(request)
    who = None
    if request.cookies.get(session.SESSION_COOKIE):
        who = await run_in_threadpool(session.viewer, svc, request)
    return Context(svc, request, who, csrf, new)


async def readable(request: Request) -> tuple[Context, Response | None]:
    """The context, and on a private index without a signed-in person (or a valid token in the
    Authorization header, for scripts) the sign-in page, answered 401: nothing else is shown."""
    ctx = await context(request)
    index = ctx.svc.indexes.default()  # the pages are the default index's (named ones: to come)
    if not index.is_private(ctx.svc.settings.private) or ctx.viewer is not None:
        return ctx, None
    if (
        request.headers.get("authorization")
        and await run_in_threadpool(check_read_access, request, ctx.svc, index) is None
    ):
        return ctx, None
    return ctx, ctx.sign_in_page("This index is private: sign in to see it.", status_code=401)
