"""PEP 503 HTML serialization of the simple API model (with 592, 629, 658/714, 740, 792)."""

from __future__ import annotations

from html import escape

from assay.index.model import API_VERSION, ProjectList, ProjectPage


def _attr(value: str) -> str:
    return escape(value, quote=True)


def render_project_list(page: ProjectList) -> str:
    # PEP 503: one anchor per project, text = project name, href = the project's URL.
    parts = [
        "<!DOCTYPE html>\n<html>\n<head>\n",
        # PEP 629: every simple page carries the repository version.
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n',
        "<title>Simple index</title>\n</head>\n<body>\n",
    ]
    for project in page.projects:
        parts.append(f'<a href="{_attr(project.normalized_name)}/">{escape(project.name)}</a><br>\n')
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def render_project_page(page: ProjectPage) -> str:
    parts = [
        "<!DOCTYPE html>\n<html>\n<head>\n",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n',
    ]
    # PEP 792: status markers as meta tags; "active" is the default and MAY be omitted,
    # but stating it costs nothing and saves clients a guess.
    parts.append(f'<meta name="pypi:project-status" content="{_attr(page.status.status)}">\n')
    if page.status.reason:
        parts.append(f'<meta name="pypi:project-status-reason" content="{_attr(page.status.reason)}">\n')
    parts.append(f"<title>Links for {escape(page.name)}</title>\n</head>\n<body>\n")
    parts.append(f"<h1>Links for {escape(page.name)}</h1>\n")
    for f in page.files:
        # PEP 503: the href carries the hash as a URL fragment #sha256=<hex>.
        attrs = [f'href="{_attr(f.url)}#sha256={f.sha256}"']
        if f.requires_python:
            # PEP 503: data-requires-python, with < and > HTML-encoded.
            attrs.append(f'data-requires-python="{_attr(f.requires_python)}"')
        if f.yanked is not False:
            # PEP 592: data-yanked, empty or the reason.
            reason = f.yanked if isinstance(f.yanked, str) else ""
            attrs.append(f'data-yanked="{_attr(reason)}"')
        if f.core_metadata_sha256:
            # PEP 714: data-core-metadata is the name; data-dist-info-metadata (PEP 658's
            # original name) is kept for clients that predate the rename.
            value = f"sha256={f.core_metadata_sha256}"
            attrs.append(f'data-core-metadata="{value}"')
            attrs.append(f'data-dist-info-metadata="{value}"')
        if f.provenance_url:
            # PEP 740: a fully qualified URL of the provenance object.
            attrs.append(f'data-provenance="{_attr(f.provenance_url)}"')
        parts.append(f"<a {' '.join(attrs)}>{escape(f.filename)}</a><br>\n")
    parts.append("</body>\n</html>\n")
    return "".join(parts)
