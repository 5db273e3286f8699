"""Templates and responses: one Jinja2 environment (autoescaping on for every template), the
pages' Content-Security-Policy, and the description renderer.

Every value from metadata reaches a page through autoescaping, except the description, which is
rendered by ``readme_renderer`` (PyPI's renderer; its output is cleaned by ``nh3`` with PyPI's
allow-list) and only then marked safe.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import readme_renderer.markdown
import readme_renderer.rst
import readme_renderer.txt
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

from assay.index.provenance_state import describe_source

#: The pages load one style sheet from the index and nothing else: no script at all (the pages
#: work without JavaScript), no frames, forms posted only to the index itself. It keeps what
#: the API's policy (``assay.web.security.CSP``) forbids everywhere else.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
#: The style sheet's URL: under ``/_/``, which holds the index's own endpoints (as on PyPI).
CSS_PATH = "/_/static/assay.css"


def _size(value: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value = value / 1024  # type: ignore[assignment]
    return str(value)  # pragma: no cover


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _web_url(value: object) -> str | None:
    """An http(s) URL from metadata, or None: a ``javascript:`` or ``data:`` URL in Project-URL or
    Home-page must never become a link (autoescaping does not stop those)."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


env = Environment(
    loader=PackageLoader("assay.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
env.filters["size"] = _size
env.filters["when"] = _when
env.filters["web_url"] = _web_url
env.globals["describe"] = describe_source


def fragment(template: str, **values: Any) -> str:
    return env.get_template(template).render(**values)


def page(
    main: str,
    *,
    title: str,
    viewer: Any,
    csrf: str,
    prefix: str,
    index: Any,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A whole page: the layout (per request: who is signed in) around a main part (cacheable).
    ``prefix`` starts every link of the index's pages ("" or ``/team``)."""
    body = env.get_template("base.html").render(
        title=title, main=Markup(main), viewer=viewer, csrf=csrf, prefix=prefix, index=index  # noqa: S704 - main is rendered by our autoescaping templates
    )
    response = HTMLResponse(body, status_code=status_code, headers=headers)
    response.headers["content-security-policy"] = CSP
    # Not the API's no-referrer: with it a browser sends "Origin: null" on the pages' own form
    # posts (Fetch: the origin is serialised as null under no-referrer), which the CSRF check
    # must refuse. same-origin still sends nothing to other sites (a README's links).
    response.headers["referrer-policy"] = "same-origin"
    # A page may name who is signed in: for one browser only, and revalidated each time.
    response.headers["cache-control"] = "private, no-cache"
    response.headers["vary"] = "Cookie"
    return response


_EMPTY_HEADING_LINK = re.compile(r'<a href="#user-content-[^"<>]*" rel="nofollow"></a>')


def description(text: str | None, content_type: str | None) -> Markup:
    """The long description as sanitised HTML, by its Description-Content-Type (core metadata
    2.1): text/markdown (variant GFM or CommonMark), text/x-rst (also when none is given, as on
    PyPI), text/plain. reST that does not render falls back to plain text, as PyPI does."""
    if not text:
        return Markup("")
    msg = Message()
    msg["content-type"] = content_type or "text/x-rst"
    mime = msg.get_content_type()
    html: str | None
    if mime == "text/markdown":
        variant = msg.get_param("variant")
        html = readme_renderer.markdown.render(text, variant=variant if variant in ("GFM", "CommonMark") else "GFM")
    elif mime == "text/plain":
        html = readme_renderer.txt.render(text)
    else:
        html = readme_renderer.rst.render(text, stream=io.StringIO())
    if html is None:
        html = readme_renderer.txt.render(text)
    # cmarkgfm puts an empty self-link in every heading: a link with no name (WCAG 2.4.4, axe's
    # link-name). The heading keeps its id, so links to it still work.
    html = _EMPTY_HEADING_LINK.sub("", html or "")
    return Markup(html)  # noqa: S704 - readme_renderer's output is nh3-cleaned
