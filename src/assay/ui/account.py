"""Sign-in, sign-out and the signed-in person's page (``[/<index>]/account/``): their projects
on this index, its API tokens (ids only), the Trusted Publishers of the projects they own, and
the open stages (issue 14) of the projects they own or maintain, read-only."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from assay.stages import store as stage_store
from assay.storage.models import ApiToken, Project, Publisher, PublisherProject, Role
from assay.ui import render, session
from assay.ui.common import Context, context

#: A form is small: a token and the CSRF field.
MAX_FORM_FIELDS = 5


async def _form(ctx: Context) -> tuple[dict[str, Any], Response | None]:
    """The POSTed form, after the CSRF check (refused: 403, nothing done)."""
    form = await ctx.request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
    problem = session.csrf_problem(ctx.svc, ctx.request, form.get(session.CSRF_FIELD))
    if problem is not None:
        return {}, ctx.error(403, "Form refused", f"The form was refused (CSRF protection): {problem}.")
    return dict(form), None


async def login_form(request: Request) -> Response:
    ctx = await context(request)
    if ctx.viewer is not None:
        return RedirectResponse(f"{ctx.prefix}/account/", status_code=303)
    return ctx.sign_in_page()


async def login(request: Request) -> Response:
    ctx = await context(request)
    form, refused = await _form(ctx)
    if refused is not None:
        return refused
    token = form.get("token")
    if not isinstance(token, str) or not token.strip():
        return ctx.sign_in_page("Give an API token.", status_code=400)
    remote = request.client.host if request.client else None
    try:
        secret, expires = await run_in_threadpool(session.sign_in, ctx.svc, ctx.index, token, remote)
    except session.SignInError as exc:
        await run_in_threadpool(session.record_refusal, ctx.svc, exc, remote)
        return ctx.sign_in_page(f"That token was refused: {exc}", status_code=403)
    response = RedirectResponse(f"{ctx.prefix}/account/", status_code=303)
    session.set_session_cookie(response, ctx.svc, request, ctx.index, secret, expires)
    return response


async def logout(request: Request) -> Response:
    ctx = await context(request)
    _, refused = await _form(ctx)
    if refused is not None:
        return refused
    await run_in_threadpool(session.sign_out, ctx.svc, request, ctx.index)
    response = RedirectResponse(f"{ctx.prefix}/", status_code=303)
    session.clear_session_cookie(response, ctx.svc, request, ctx.index)
    return response


def _account(ctx: Context) -> str:
    who = ctx.viewer
    assert who is not None
    index_id = ctx.index.id
    with ctx.svc.db.read() as s:
        projects: list[Any] = []
        publishers: list[tuple[str, Publisher]] = []
        stages: list[stage_store.StageView] = []
        required: dict[str, int] = {}
        if who.user_id is not None:
            projects = list(
                s.execute(
                    sa.select(Project.name, Project.normalized_name, Role.role)
                    .join(Role, Role.project_id == Project.id)
                    .where(Role.user_id == who.user_id, Project.index_id == index_id)
                    .order_by(Project.normalized_name)
                )
            )
            publishers = [
                (name, p)
                for name, p in s.execute(
                    sa.select(Project.name, Publisher)
                    .join(PublisherProject, PublisherProject.project_id == Project.id)
                    .join(Publisher, Publisher.id == PublisherProject.publisher_id)
                    .join(Role, Role.project_id == Project.id)
                    .where(Role.user_id == who.user_id, Role.role == "owner", Project.index_id == index_id)
                    .order_by(Project.normalized_name, Publisher.id)
                )
            ]
            # Issue 14: whoever may approve a stage (an owner or maintainer: ``stages.actions``)
            # sees the open ones; approving stays with ``assay release approve`` and its TOTP.
            for project in s.execute(
                sa.select(Project)
                .join(Role, Role.project_id == Project.id)
                .where(Role.user_id == who.user_id, Project.index_id == index_id)
                .order_by(Project.normalized_name)
            ).scalars():
                found = stage_store.project_stages(s, project)
                stages += found
                if found:
                    required[project.normalized_name] = project.approvals_required
        tokens = list(
            s.execute(
                sa.select(ApiToken)
                .where(
                    ApiToken.user_id == who.user_id if who.user_id is not None else ApiToken.id == who.token_id,
                    ApiToken.index_id == index_id,
                )
                .order_by(ApiToken.created)
            ).scalars()
        )
        return render.fragment(
            "account.html", viewer=who, projects=projects, tokens=tokens, publishers=publishers, stages=stages,
            required=required, prefix=ctx.prefix, preview_base=ctx.svc.base_url(ctx.request) + ctx.prefix,
            index=ctx.index,
        )


async def account(request: Request) -> Response:
    ctx = await context(request)
    if ctx.viewer is None:
        return ctx.sign_in_page("Sign in to see your account.", status_code=401)
    main = await run_in_threadpool(_account, ctx)
    return ctx.page(main, title="Account")
