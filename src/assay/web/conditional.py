"""Conditional GET (RFC 9110 §13.1.2 If-None-Match), the one rule every route uses.

If-None-Match compares entity tags weakly: ``W/"x"`` matches ``"x"`` and the other way round,
so a cache that downgraded our strong ETag to a weak one (nginx does when it compresses) still
revalidates to a 304. ``*`` matches any current representation; the header may list tags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: One entity-tag of a list (RFC 9110 §8.8.3: an optional W/ and a quoted opaque-tag, which
#: may itself hold commas, so the list is not split on them).
_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')


def not_modified(headers: Mapping[str, str], etag: str) -> bool:
    """Whether the request's If-None-Match matches ``etag`` (answer 304 Not Modified)."""
    header = headers.get("if-none-match")
    if not header:
        return False
    if header == etag:
        return True  # the common case: the tag the client was given, sent back as is
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(match.group(1) == opaque for match in _ENTITY_TAG.finditer(header))
