"""The two ways ``assay verify`` stops early, as opposed to giving a file a verdict."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """The input cannot be used at all (a lock that is not PEP 751, a hash that is not sha256,
    a malformed pins file, no index to ask). The CLI exits 2; the message says what to fix."""


class FetchError(Exception):
    """One HTTP exchange failed for good (after retries): the message names the URL and what
    went wrong. It becomes a per-file failure, never a ``verified`` verdict."""


def read_input(path: Path) -> str:
    """The text of an input file the run cannot do without (a lock, a requirements file)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not readable as a text file: {exc}") from None
