"""Proactive content negotiation (RFC 9110 §12.5.1), the one ``Accept`` parser every route uses.

A client lists media ranges with optional q-values; an offer's quality is the q of the most
specific range that matches one of the names it answers to (``type/subtype`` over ``type/*``
over ``*/*``), so ``application/json;q=0, */*`` refuses JSON. Order carries no meaning. No
``Accept`` (or a blank one) means ``*/*`` (RFC 9110, and PEP 691 says the same). Unknown
parameters are ignored; an unreadable or out-of-range q counts as 0 (not acceptable).

Offers are built once per route (module constants), and results are memoized: clients send the
same few headers, so the hot path costs a dictionary lookup.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

#: (media range, q) as parsed from an Accept header.
Accepted = tuple[tuple[str, float], ...]

_ANY: Accepted = (("*/*", 1.0),)


@dataclass(frozen=True)
class Offer:
    """A representation a route can answer with.

    ``names`` are the media types a client may ask for it by (aliases such as PEP 691's
    ``latest`` or plain ``application/json``); ``content_type`` is what the answer carries.
    Among offers of equal quality the higher rank wins, ``named_rank`` when the client named the
    offer, ``wildcard_rank`` when only a wildcard reached it (PEP 691 leaves the choice to the
    server)."""

    content_type: str
    names: frozenset[str]
    named_rank: int = 0
    wildcard_rank: int = 0


class Offers:
    """The offers of one route. Compared and hashed by identity (cheap memo keys)."""

    __slots__ = ("offers", "served")

    def __init__(self, offers: Iterable[Offer]) -> None:
        self.offers = tuple(offers)
        #: For error messages: every name the route answers to.
        self.served = ", ".join(sorted({name for offer in self.offers for name in offer.names}))


def parse_accept(header: str | None) -> Accepted:
    """The media ranges of an Accept header, lower-cased, with their q-values."""
    entries: list[tuple[str, float]] = []
    for raw in (header or "").split(","):
        media, *params = (part.strip() for part in raw.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN
                    q = 0.0
        entries.append((media.lower(), q))
    return tuple(entries) or _ANY


def quality(names: frozenset[str], accepted: Accepted) -> tuple[float, int]:
    """The q a client gives an offer and how specifically it matched (2: by name, 1: type/*,
    0: */*, -1: not at all). The most specific matching range decides (RFC 9110 §12.5.1); an
    offer with several names gets the best of them."""
    best: tuple[int, float] | None = None
    for media in names:
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


@functools.lru_cache(maxsize=2048)
def negotiate(accept: str | None, offers: Offers) -> Offer | None:
    """The offer the client prefers, or None when it accepts none of them (HTTP 406)."""
    accepted = parse_accept(accept)
    best: tuple[float, bool, int] | None = None
    chosen: Offer | None = None
    for offer in offers.offers:
        q, specificity = quality(offer.names, accepted)
        named = specificity == 2
        score = (q, named, offer.named_rank if named else offer.wildcard_rank)
        if best is None or score > best:
            best, chosen = score, offer
    if best is None or best[0] <= 0:
        return None
    return chosen
