"""What an index may be called: one URL path segment that no site-root route already uses."""

from __future__ import annotations

import re

from assay.storage.models import DEFAULT_INDEX_NAME

#: Lower-case letters, digits and inner ``-``/``_``, at most 64 characters (a URL segment that
#: needs no quoting and reads the same everywhere).
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")

#: First path segments the site root serves itself (its own routes, and those later issues name:
#: ``/project/`` pages, ``/stage/`` previews); an index by one of these names would be unreachable.
RESERVED = frozenset(
    {
        DEFAULT_INDEX_NAME,
        "simple",
        "legacy",
        "files",
        "integrity",
        "pypi",
        "log",
        "_",
        "project",
        "stage",
        "static",
        "search",
        "account",
        "admin",
        "api",
        "health",
        "well-known",
        # blob keys: mirrored files live under mirror/<index id>/ (assay.mirror.files)
        "mirror",
    }
)


class IndexNameError(ValueError):
    """A name an index cannot have; the message says why."""


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise IndexNameError(
            f"invalid index name {name!r}: use 1-64 lower-case letters, digits, '-' or '_', "
            "starting and ending with a letter or digit"
        )
    if name in RESERVED:
        raise IndexNameError(f"the index name {name!r} is reserved (the site root uses it)")
    return name
