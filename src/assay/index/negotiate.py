"""PEP 691 content negotiation for the simple API.

The client lists media types in ``Accept`` with optional q-values; the server picks the one it
supports with the highest quality (order carries no meaning, PEP 691). A ``format`` query
parameter, when present, overrides the header (PEP 691 "alternative negotiation mechanisms").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum


class Format(Enum):
    JSON = "json"
    HTML = "html"


JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

#: What we answer with: (format, Content-Type, the media types a client may name for it).
#: PEP 691: "latest" resolves to the concrete version in the response's Content-Type, and
#: text/html is an alias of the v1 HTML type (answered as text/html for old clients).
_OFFERS: list[tuple[Format, str, frozenset[str]]] = [
    (Format.JSON, JSON_V1, frozenset({JSON_V1, "application/vnd.pypi.simple.latest+json"})),
    (Format.HTML, HTML_V1, frozenset({HTML_V1, "application/vnd.pypi.simple.latest+html"})),
    (Format.HTML, TEXT_HTML, frozenset({TEXT_HTML})),
]

#: Media type a client may ask for -> (format, Content-Type we answer with).
_SUPPORTED: dict[str, tuple[Format, str]] = {
    alias: (fmt, content_type) for fmt, content_type, aliases in _OFFERS for alias in aliases
}

#: Among offers of equal quality, the server chooses (PEP 691). Types the client named prefer
#: JSON, the richer format; types reached only through a wildcard prefer text/html, which every
#: pre-691 client (and browser) understands, as PyPI answers */*.
_NAMED_PREFERENCE = {JSON_V1: 2, HTML_V1: 1, TEXT_HTML: 0}
_WILDCARD_PREFERENCE = {TEXT_HTML: 2, JSON_V1: 1, HTML_V1: 0}


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


def _quality(aliases: frozenset[str], accepted: list[tuple[str, float]]) -> tuple[float, int]:
    """The quality the client gives an offer and how specifically it named it (2: by name,
    1: type/*, 0: */*). The most specific matching entry decides (RFC 9110 12.5.1), so
    ``v1+json;q=0, */*`` refuses JSON; an offer named by several aliases gets the best of them."""
    best: tuple[int, float] | None = None
    for media in aliases:
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
            if best is None or specificity > best[0] or (specificity == best[0] and q > best[1]):
                best = (specificity, q)
    return (best[1], best[0]) if best else (0.0, -1)


@functools.lru_cache(maxsize=1024)
def negotiate(accept: str | None, format_param: str | None) -> Choice:
    """Pick the representation (memoized: clients send the same few Accept headers)."""
    return _negotiate(accept, format_param)


def _negotiate(accept: str | None, format_param: str | None) -> Choice:
    if format_param:
        # A "+" typed into a URL reaches us as a space (form encoding): "v1+json" is meant.
        wanted = format_param.strip().lower().replace(" ", "+")
        choice = _SUPPORTED.get(wanted)
        if choice is None:
            raise NotAcceptable(f"unsupported format {format_param!r}; use one of: {', '.join(sorted(_SUPPORTED))}")
        return Choice(*choice)
    # PEP 691: no Accept header means "Accept: */*".
    accepted = _parse_accept(accept or "*/*") or [("*/*", 1.0)]
    scored = []
    for fmt, content_type, aliases in _OFFERS:
        q, specificity = _quality(aliases, accepted)
        preference = (_NAMED_PREFERENCE if specificity == 2 else _WILDCARD_PREFERENCE)[content_type]
        scored.append((q, specificity == 2, preference, fmt, content_type))
    q, _named, _pref, fmt, content_type = max(scored, key=lambda s: s[:3])
    if q <= 0:
        raise NotAcceptable(
            "none of the media types in the Accept header is served here; "
            f"the simple API serves: {', '.join(sorted(_SUPPORTED))}"
        )
    return Choice(fmt, content_type)
