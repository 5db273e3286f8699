"""Which index to ask, and the URLs on it.

No index is built in. A file's index is, in order: the lock's ``packages.index`` (PEP 751), a
requirements file's ``--index-url``, ``assay verify --index-url``, an ``--index-url`` among
the ``pip lock`` arguments, then pip's own configuration (``PIP_INDEX_URL``, then ``pip config
get global.index-url``): the index pip itself would have installed from. ``pip lock`` writes
no ``packages.index`` (PEP 751 makes it optional), so for its output this is how the index is
found. ``pip config`` is asked of the pip that installs (``assay install``'s target
environment), whose configuration includes that environment's own ``pip.conf``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

from assay.verify.errors import InputError


def pip_args_index(pip_args: Sequence[str]) -> str | None:
    """The ``-i/--index-url`` given among ``pip lock`` arguments, if any."""
    for i, arg in enumerate(pip_args):
        if arg in ("-i", "--index-url") and i + 1 < len(pip_args):
            return pip_args[i + 1]
        if arg.startswith("--index-url="):
            return arg.split("=", 1)[1]
    return None


def pip_configured_index(python: str) -> str | None:
    """The index-url pip is configured with (environment first, then the config files of the
    pip of ``python``). ``pip config get`` does not read ``PIP_*`` variables, hence both."""
    if value := os.environ.get("PIP_INDEX_URL", "").strip():
        return value
    try:
        proc = subprocess.run(
            [python, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value else None


class DefaultIndex:
    """The index for files whose input names none; looked up once, only if needed."""

    def __init__(
        self,
        explicit: str | None,
        *,
        pip_args: Sequence[str] = (),
        python: Callable[[], str] = lambda: sys.executable,
    ) -> None:
        self._value = explicit or pip_args_index(pip_args)
        self._looked_up = self._value is not None
        #: Whose ``pip config`` to ask; called only if it comes to that.
        self._python = python

    def get(self, *, needed_by: str) -> str:
        if not self._looked_up:
            self._value = pip_configured_index(self._python())
            self._looked_up = True
        if not self._value:
            raise InputError(
                f"no index to ask for the provenance of {needed_by}: the input names none "
                "(pip lock never records one); give the index's simple API URL with "
                "--index-url URL, or set it for pip with PIP_INDEX_URL=URL or "
                "`pip config set global.index-url URL`"
            )
        return self._value


def project_page_url(index: str, project: str) -> str:
    """PEP 503: the project page is ``<index>/<normalized name>/``."""
    return f"{index.rstrip('/')}/{quote(project)}/"


def integrity_url(index: str, project: str, version: str, filename: str) -> str:
    """PyPI's Integrity API path on the index's host: ``/integrity/<project>/<version>/
    <filename>/provenance`` (the route PEP 740 provenance URLs point to on PyPI and on assay),
    for an index whose pages carry no ``provenance`` key."""
    parts = urlsplit(index)
    path = f"/integrity/{quote(project)}/{quote(version)}/{quote(filename)}/provenance"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def redact(url: str) -> str:
    """A URL fit for messages: credentials in it (``https://user:token@host/``) removed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
