"""Claim and subject patterns: the one small language a generic OIDC publisher is written in,
both for its token claim constraints (``--claim NAME=PATTERN``, checked at every token exchange
by ``assay.publishers.oidc``) and for the certificate subject (SAN) its PEP 740 attestations
must carry (``--subject PATTERN``, checked by ``assay.publishers.policies``).

The values these patterns match are structured: ``repo:OWNER/NAME:ref:refs/tags/v1``,
``project_path:GROUP/PROJECT:ref_type:tag:ref:v1``, ``https://ci.example.com/OWNER/NAME/...``.
Shell globs (``fnmatch``) let ``*`` run across those structures, so ``repo:acme*`` matched
``repo:acme-evil/x`` and ``sub=?*`` matched every token of an issuer. The rules:

* A pattern without ``*`` is an exact, case-sensitive value.
* ``*`` matches any run of characters (possibly none) inside one segment: never ``/`` or ``:``.
* ``**`` matches any run of characters, separators included.
* ``?``, ``[`` and ``***`` (or longer runs of ``*``) are refused, so a shell glob is not
  silently read with another meaning.
* A pattern with a wildcard must pin its namespace: the text before the first wildcard must
  hold at least ``MIN_LITERAL_SEGMENTS`` (2) complete, non-empty literal segments (segments
  are separated by ``/`` and ``:``). ``repo:acme/*`` pins ``repo`` and ``acme`` (PyPI's GitHub
  publishers always name the owner and the repository); ``repo:*``, ``repo:acme*`` (which
  would match ``repo:acme-evil/...``), ``https://ci.example.com*``, ``*@example.com`` and
  ``*`` are refused. ``https://ci.example.com/*`` pins the scheme and the host.

The matching is a regular expression built from the pattern: no library implements this
language (``fnmatch`` and ``wcmatch`` treat only ``/`` as a separator, if any).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

#: Complete literal segments a pattern must start with before its first wildcard.
MIN_LITERAL_SEGMENTS = 2
SEPARATORS = "/:"
_SEPARATOR = re.compile(r"[/:]")
_TOKENS = re.compile(r"\*\*|\*|[^*]+")


class PatternError(ValueError):
    """A pattern outside the language; the message says what is wrong and what would do."""


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern[str] | None  # None: an exact value

    @property
    def exact(self) -> bool:
        return self.regex is None

    def matches(self, value: str) -> bool:
        if self.regex is None:
            return value == self.text
        return self.regex.fullmatch(value) is not None


@functools.lru_cache(maxsize=1024)
def compile_pattern(text: str) -> Pattern:
    """``text`` as a pattern, or ``PatternError`` saying why it is not one."""
    if not text:
        raise PatternError("a pattern must not be empty")
    for bad in ("?", "["):
        if bad in text:
            raise PatternError(
                f"{text!r}: {bad!r} is not part of the pattern language "
                "(only * within a segment and ** across segments)"
            )
    if "***" in text:
        raise PatternError(f"{text!r}: use * (within a segment) or ** (across), not ***")
    if "*" not in text:
        return Pattern(text, None)
    prefix = text[: text.index("*")]
    complete = [segment for segment in _SEPARATOR.split(prefix)[:-1] if segment]
    if len(complete) < MIN_LITERAL_SEGMENTS:
        raise PatternError(
            f"{text!r} does not pin a namespace: write at least {MIN_LITERAL_SEGMENTS} literal segments "
            "(separated by / or :) before the first wildcard, e.g. repo:OWNER/* or https://HOST/*"
        )
    parts: list[str] = []
    for piece in _TOKENS.findall(text):
        if piece == "**":
            parts.append(".*")
        elif piece == "*":
            parts.append(f"[^{re.escape(SEPARATORS)}]*")
        else:
            parts.append(re.escape(piece))
    return Pattern(text, re.compile("".join(parts), re.DOTALL))
