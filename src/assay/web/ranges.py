"""The one byte range of a ``Range`` header a file download honours (RFC 9110 section 14).

Lazy wheel readers (pip's ``fast-deps``, uv without PEP 658 metadata) ask for the zip's end and
then its central directory, one range per request. A header with several ranges, another unit,
or junk is ignored and the whole file is sent (section 14.2: a server MAY ignore Range); so is
one whose ``If-Range`` names another version of the file (section 13.1.5).
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers

_ONE = re.compile(r"bytes=(\d*)-(\d*)")


def requested_range(headers: Headers, etag: str) -> tuple[int | None, int | None] | None:
    raw = headers.get("range")
    if raw is None:
        return None
    if_range = headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        return None
    match = _ONE.fullmatch(raw.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if first and last and int(last) < int(first):
        return None  # invalid: ignored (section 14.1.1)
    return (int(first) if first else None, int(last) if last else None)
