"""JSON from the outside world (request bodies, form fields, JWT segments), parsed safely.

CPython's ``json`` recurses once per nested array or object and raises ``RecursionError`` (not
``ValueError``) near ``sys.getrecursionlimit()``: ``[`` repeated a thousand times is enough, and
whatever then walks the result (pydantic, ``json.dumps``) would recurse as deeply. No document
this index accepts nests deeper than a dozen levels (a PEP 740 attestation, an in-toto statement,
a token request), so nesting is bounded before ``json.loads`` runs: a linear scan that counts
brackets outside strings (issue 10, item 3).
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Far above any document the index reads, far below the interpreter's recursion limit.
MAX_DEPTH = 64

#: A whole string (escapes included; possessive, so a long string never backtracks), a bracket,
#: or a quote that opens a string never closed (the document is then invalid anyway).
_TOKENS = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"|[\[\]{}"]', re.DOTALL)


class JSONTooDeep(ValueError):
    """The document nests arrays/objects deeper than allowed; the message says so."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested more than {max_depth} levels deep")
        self.max_depth = max_depth


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``JSONTooDeep`` if ``text`` opens more than ``max_depth`` nested arrays/objects."""
    if text.count("[") + text.count("{") <= max_depth:
        return  # cannot nest deeper than it has brackets (every ordinary document)
    depth = 0
    for match in _TOKENS.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise JSONTooDeep(max_depth)
        elif char in "]}":
            depth -= 1
        elif char == '"':
            return  # an unterminated string: json.loads reports it


def loads(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for untrusted input: every failure is a ``ValueError`` (``JSONTooDeep``,
    ``json.JSONDecodeError`` or ``UnicodeDecodeError``), never a ``RecursionError``."""
    if isinstance(data, bytes | bytearray):
        # What json.loads does with bytes (RFC 8259 allows UTF-8, -16 and -32).
        text = bytes(data).decode(json.detect_encoding(data), "surrogatepass")
    else:
        text = data
    check_depth(text, max_depth)
    return json.loads(text)
