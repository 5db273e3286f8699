"""Custom HTTP reason phrases for error responses.

Warehouse puts an upload error's message in the HTTP reason phrase ("400 File already exists
..."), and twine shows the client nothing else: without ``--verbose`` it prints only
``response.reason``. ASGI has no field for a reason phrase, so uvicorn always writes the
standard one. To make twine show our messages, a response sets the phrase in a context
variable, and uvicorn's status-line tables (looked up inside ``send``, which runs in the
response's context) are replaced by mappings that consult it.

This touches two module-level tables of uvicorn's HTTP protocols; ``install()`` checks they are
shaped as expected and the test suite asserts that twine prints the message.
"""

from __future__ import annotations

import contextvars
import http
from collections.abc import Iterator, Mapping
from typing import Any

_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar("assay_reason", default=None)

_MAX = 512


def clean(message: str) -> str:
    """A reason phrase is one line of visible ASCII (RFC 9112 reason-phrase)."""
    text = " ".join(message.split())
    text = text.encode("ascii", "replace").decode("ascii")
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text[:_MAX]


def set_reason(message: str | None) -> contextvars.Token[str | None]:
    return _reason.set(clean(message) if message else None)


def reset_reason(token: contextvars.Token[str | None]) -> None:
    _reason.reset(token)


class _StatusLines(Mapping[int, bytes]):
    """uvicorn httptools: status code -> b"HTTP/1.1 <code> <phrase>\\r\\n"."""

    def __init__(self, base: Mapping[int, bytes]) -> None:
        self._base = base

    def __getitem__(self, code: int) -> bytes:
        reason = _reason.get()
        if reason and code >= 400:
            return b"HTTP/1.1 %d %s\r\n" % (code, reason.encode("ascii"))
        return self._base[code]

    def __iter__(self) -> Iterator[int]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


class _Phrases(Mapping[int, bytes]):
    """uvicorn h11: status code -> phrase bytes."""

    def __init__(self, base: Mapping[int, bytes]) -> None:
        self._base = base

    def __getitem__(self, code: int) -> bytes:
        reason = _reason.get()
        if reason and code >= 400:
            return reason.encode("ascii")
        return self._base[code]

    def __iter__(self) -> Iterator[int]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    try:
        from uvicorn.protocols.http import httptools_impl

        table: Any = httptools_impl.STATUS_LINE
        if isinstance(table, dict) and table.get(400, b"").startswith(b"HTTP/1.1 400"):
            httptools_impl.STATUS_LINE = _StatusLines(table)  # type: ignore[assignment]
    except ImportError:  # httptools not installed: the h11 protocol is used instead
        pass
    from uvicorn.protocols.http import h11_impl

    phrases: Any = h11_impl.STATUS_PHRASES
    if isinstance(phrases, dict) and phrases.get(400) == http.HTTPStatus(400).phrase.encode():
        h11_impl.STATUS_PHRASES = _Phrases(phrases)  # type: ignore[assignment]
    _installed = True
