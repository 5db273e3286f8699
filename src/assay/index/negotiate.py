"""PEP 691 content negotiation for the simple API, on the shared RFC 9110 negotiator.

The client lists media types in ``Accept`` with optional q-values; the server picks the one it
supports with the highest quality (order carries no meaning, PEP 691). A ``format`` query
parameter, when present, overrides the header (PEP 691 "alternative negotiation mechanisms").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum

from assay import mediatypes as mt
from assay.web.negotiation import Offer, Offers
from assay.web.negotiation import negotiate as negotiate_accept


class Format(Enum):
    JSON = "json"
    HTML = "html"


@dataclass(frozen=True)
class Choice:
    format: Format
    content_type: str


class NotAcceptable(ValueError):
    """Nothing the client accepts is something we serve (HTTP 406)."""


#: PEP 691: "latest" resolves to the concrete version in the response's Content-Type, and
#: text/html is an alias of the v1 HTML type (answered as text/html for old clients). Among
#: offers of equal quality the server chooses: types the client named prefer JSON, the richer
#: format; types reached only through a wildcard prefer text/html, which every pre-691 client
#: (and browser) understands, as PyPI answers */*.
_JSON = Offer(mt.SIMPLE_JSON_V1, frozenset({mt.SIMPLE_JSON_V1, mt.SIMPLE_JSON_LATEST}), named_rank=2, wildcard_rank=1)
_HTML = Offer(mt.SIMPLE_HTML_V1, frozenset({mt.SIMPLE_HTML_V1, mt.SIMPLE_HTML_LATEST}), named_rank=1, wildcard_rank=0)
_TEXT_HTML = Offer(mt.TEXT_HTML, frozenset({mt.TEXT_HTML}), named_rank=0, wildcard_rank=2)
SIMPLE_OFFERS = Offers([_JSON, _HTML, _TEXT_HTML])

_CHOICES = {
    offer.content_type: Choice(Format.JSON if offer is _JSON else Format.HTML, offer.content_type)
    for offer in SIMPLE_OFFERS.offers
}
#: ``?format=`` value -> the choice it names (any name of an offer).
_BY_NAME = {name: _CHOICES[offer.content_type] for offer in SIMPLE_OFFERS.offers for name in offer.names}


@functools.lru_cache(maxsize=1024)
def negotiate(accept: str | None, format_param: str | None) -> Choice:
    """Pick the representation (memoized: clients send the same few Accept headers)."""
    if format_param:
        # A "+" typed into a URL reaches us as a space (form encoding): "v1+json" is meant.
        wanted = format_param.strip().lower().replace(" ", "+")
        choice = _BY_NAME.get(wanted)
        if choice is None:
            raise NotAcceptable(f"unsupported format {format_param!r}; use one of: {SIMPLE_OFFERS.served}")
        return choice
    offer = negotiate_accept(accept, SIMPLE_OFFERS)
    if offer is None:
        raise NotAcceptable(
            "none of the media types in the Accept header is served here; "
            f"the simple API serves: {SIMPLE_OFFERS.served}"
        )
    return _CHOICES[offer.content_type]
