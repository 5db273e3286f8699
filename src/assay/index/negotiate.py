"""PEP 691 content negotiation for the simple API.

The client lists media types in ``Accept`` with optional q-values; the server picks the one it
supports with the highest quality (order carries no meaning, PEP 691). A ``format`` query
parameter, when present, overrides the header (PEP 691 "alternative negotiation mechanisms").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Format(Enum):
    JSON = "json"
    HTML = "html"


JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

#: Media type a client may ask for -> (format, Content-Type we answer with).
#: PEP 691: "latest" resolves to the concrete version in the response's Content-Type, and
#: text/html is an alias of the v1 HTML type (answered as text/html for old clients).
_SUPPORTED: dict[str, tuple[Format, str]] = {
    JSON_V1: (Format.JSON, JSON_V1),
    "application/vnd.pypi.simple.latest+json": (Format.JSON, JSON_V1),
    HTML_V1: (Format.HTML, HTML_V1),
    "application/vnd.pypi.simple.latest+html": (Format.HTML, HTML_V1),
    TEXT_HTML: (Format.HTML, TEXT_HTML),
}

#: When several supported types tie on quality, prefer JSON: it is the richer format.
_PREFERENCE = [JSON_V1, "application/vnd.pypi.simple.latest+json", HTML_V1,
               "application/vnd.pypi.simple.latest+html", TEXT_HTML]


@dataclass(frozen=True)
class Choice:
    format: Format
    content_type: str


class NotAcceptable(ValueError):
    """Nothing the client accepts is something we serve (HTTP 406)."""


def _parse_accept(header: str) -> list[tuple[str, float]]:
    entries: list[tuple[str, float]] = []
    for raw in header.split(","):
        raw = raw.strip()
        if not raw:
            continue
        media, *params = (p.strip() for p in raw.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        entries.append((media.lower(), q))
    return entries


def _quality(media: str, accepted: list[tuple[str, float]]) -> float:
    """The quality the client gives ``media``: the most specific matching entry wins (RFC 9110)."""
    best: tuple[int, float] | None = None
    major = media.split("/", 1)[0]
    for entry, q in accepted:
        if entry == media:
            specificity = 2
        elif entry == f"{major}/*":
            specificity = 1
        elif entry == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, q)
    return best[1] if best else 0.0


def negotiate(accept: str | None, format_param: str | None) -> Choice:
    if format_param:
        choice = _SUPPORTED.get(format_param.strip().lower())
        if choice is None:
            raise NotAcceptable(
                f"unsupported format {format_param!r}; use one of: {', '.join(_SUPPORTED)}"
            )
        return Choice(*choice)
    # PEP 691: no Accept header means "Accept: */*". For */* we answer text/html, the type
    # every pre-691 client (and browser) understands, as PyPI does.
    if not accept or not accept.strip():
        return Choice(Format.HTML, TEXT_HTML)
    accepted = _parse_accept(accept)
    if all(media in ("*/*",) for media, _ in accepted) and accepted and accepted[0][1] > 0:
        return Choice(Format.HTML, TEXT_HTML)
    scored = [(_quality(media, accepted), -rank, media) for rank, media in enumerate(_PREFERENCE)]
    q, _, media = max(scored)
    if q <= 0:
        raise NotAcceptable(
            "none of the media types in the Accept header is served here; "
            f"the simple API serves: {', '.join(_SUPPORTED)}"
        )
    return Choice(*_SUPPORTED[media])
