"""Project, release and file pages: ``/project/<name>/``, ``/project/<name>/<version>/``,
``/project/<name>/<version>/<filename>/`` (the first two are the JSON API's ``project_url`` and
``release_url``, ``assay.index.jsonapi``), under ``/<index>/`` for a named index."""

from __future__ import annotations

from typing import Any

from packaging.utils import InvalidName, canonicalize_name
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from assay.index.pages import Rendered, project_head
from assay.ui import data, provenance, render
from assay.ui.cache import page_key
from assay.ui.common import Context, readable
from assay.ui.home import mirror_notice

_FACTS = (
    ("Requires-Python", "requires_python"),
    ("License", "license_expression"),
    ("License (text)", "license"),
    ("Author", "author"),
    ("Author e-mail", "author_email"),
    ("Maintainer", "maintainer"),
    ("Maintainer e-mail", "maintainer_email"),
    ("Keywords", "keywords"),
    ("Requires-Dist", "requires_dist"),
    ("Provides-Extra", "provides_extra"),
)


def _links(meta: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(label, URL or None when it is not an http(s) URL, text) of Home-page, Download-URL and
    each Project-URL (core metadata 1.2: "label, URL"; packaging gives a dict)."""
    out: list[tuple[str, str | None, str]] = []
    for label, key in (("Homepage", "home_page"), ("Download", "download_url")):
        if isinstance(meta.get(key), str) and meta[key]:
            out.append((label, render._web_url(meta[key]), meta[key]))
    urls = meta.get("project_urls")
    items: list[tuple[str, str]] = []
    if isinstance(urls, dict):
        items = [(str(k), str(v)) for k, v in urls.items()]
    elif isinstance(urls, list):
        for entry in urls:
            label, _, url = str(entry).partition(",")
            items.append((label.strip(), url.strip()))
    out += [(label, render._web_url(url), url) for label, url in items]
    return out


def _facts(meta: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for label, key in _FACTS:
        value = meta.get(key)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if value:
            out.append((label, str(value)))
    return out


def _name(raw: str) -> str | None:
    try:
        return canonicalize_name(raw, validate=True)
    except InvalidName:
        return None


def _redirect(request: Request, prefix: str, normalized: str) -> Response | None:
    """A non-normalized name (or a missing slash) redirects to the canonical URL, as the simple
    API does (PEP 503); ``prefix``: the index's (``/team``)."""
    raw = request.path_params["project"]
    path = request.scope["path"]
    if raw == normalized and path.endswith("/"):
        return None
    rest = path.split("/project/" + raw, 1)[1] if "/project/" + raw in path else "/"
    if not rest.endswith("/"):
        rest += "/"
    return RedirectResponse(str(request.url.replace(path=f"{prefix}/project/{normalized}{rest}")), status_code=301)


def _render(
    ctx: Context, normalized: str, page: str, version: str | None, filename: str | None
) -> tuple[str, str] | None:
    """The main part of a page and its title, from the cache or rendered (in a thread)."""
    svc = ctx.svc
    index = ctx.index
    with svc.db.read() as session:
        head = project_head(session, index, normalized)
        if head is None:
            return None
        # Project ids are the server's (unique over its indexes); the index is in the key all the
        # same, as every link in the page carries its prefix.
        key = page_key(head.id, head.serial, page, version, filename, index.id)
        cached = svc.ui_pages.cache.get(key)
        if cached is not None:
            title, _, body = cached.body.decode().partition("\0")
            return body, title
        loaded: data.ProjectData | None = svc.ui_pages.loaded(head.id, head.serial)
        if loaded is None:
            loaded = data.load_project(session, head)
            svc.ui_pages.keep(head.id, head.serial, loaded)
        common = {"head": head, "prefix": index.prefix}
        if page == "project":
            meta = loaded.metadata
            title = head.name
            body = render.fragment(
                "project.html",
                latest=loaded.latest,
                releases=loaded.releases,
                meta=meta,
                links=_links(meta),
                facts=_facts(meta),
                description=render.description(meta.get("description"), meta.get("description_content_type")),
                **common,
            )
        else:
            release = data.find_release(loaded, version or "")
            if release is None:
                return None
            files = data.load_files(session, index, head, release.id)
            if page == "release":
                title = f"{head.name} {release.version}"
                body = render.fragment("release.html", release=release, files=files, **common)
            else:
                file = next((f for f in files if f.filename == filename), None)
                if file is None:
                    return None
                log = data.log_records(session, file.filename, index.id)
                bundles = provenance.bundles(file.provenance, svc.settings.log_viewer_url)
                attestations = [a for b in bundles for a in b.attestations]
                recorded = [e.created for e in log if e.provenance]
                title = file.filename
                body = render.fragment(
                    "file.html",
                    release=release,
                    file=file,
                    bundles=bundles,
                    log=log,
                    rebuilds=data.rebuilds(session, index.id, file.filename, file.sha256),
                    approval=data.approval(session, head.id, file.filename, file.sha256),
                    verified=recorded[0] if recorded else (file.upload_time if bundles else None),
                    commits=sorted({a.source_commit for a in attestations if a.source_commit}),
                    refs=sorted({a.source_ref for a in attestations if a.source_ref}),
                    **common,
                )
        # Cached under the serial this transaction read: a later change moves the serial on.
        svc.ui_pages.cache.put(key, Rendered((title + "\0" + body).encode(), ""))
    return body, title


async def _serve(request: Request, page: str) -> Response:
    ctx, denied = await readable(request)
    if denied is not None:
        return denied
    if ctx.index.is_mirror:
        return ctx.page(mirror_notice(ctx), title="Mirror", status_code=404)
    normalized = _name(request.path_params["project"])
    if normalized is None:
        return ctx.error(404, "Not found", "That is not a valid project name.")
    if (redirect := _redirect(request, ctx.prefix, normalized)) is not None:
        return redirect
    version = request.path_params.get("version")
    filename = request.path_params.get("filename")
    found = await run_in_threadpool(_render, ctx, normalized, page, version, filename)
    if found is None:
        what = {"project": "project", "release": "release", "file": "file"}[page]
        message = f"This index has no such {what}."
        if ctx.index.bases:
            # Issue 12: a hosted index over mirrors serves their projects by the simple API only.
            message += (
                f" Projects of the mirror{'s' if len(ctx.index.bases) > 1 else ''} it is layered over "
                f"({', '.join(ctx.index.bases)}) have no pages: see {ctx.prefix}/simple/{normalized}/."
            )
        return ctx.error(404, "Not found", message)
    body, title = found
    return ctx.page(body, title=title)


async def project_page(request: Request) -> Response:
    return await _serve(request, "project")


async def release_page(request: Request) -> Response:
    return await _serve(request, "release")


async def file_page(request: Request) -> Response:
    return await _serve(request, "file")
