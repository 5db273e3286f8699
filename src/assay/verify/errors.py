"""The two ways ``assay verify`` stops early, as opposed to giving a file a verdict."""

from __future__ import annotations


class InputError(ValueError):
    """The input cannot be used at all (a lock that is not PEP 751, a hash that is not sha256,
    a malformed pins file, no index to ask). The CLI exits 2; the message says what to fix."""


class FetchError(Exception):
    """One HTTP exchange failed for good (after retries): the message names the URL and what
    went wrong. It becomes a per-file failure, never a ``verified`` verdict."""
