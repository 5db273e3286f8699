"""Whole-file advisory locks (``flock``) that serialise SQLite writers across processes.

``fcntl`` exists only on POSIX systems. Importing it at the top of ``assay.storage.db`` made
the whole storage layer, and so every ``assay`` command (the verify client among them), fail on
a platform without it with a bare ``ModuleNotFoundError``. Only the SQLite write path and the
migration lock need the lock, so it is imported here and a platform without it gets, at the
first SQLite write, an error that says what to do instead (PostgreSQL needs no file lock).
"""

from __future__ import annotations

from types import ModuleType
from typing import IO, Any

try:
    import fcntl as _fcntl_module
except ImportError:  # pragma: no cover - Windows has no fcntl
    _fcntl: ModuleType | None = None
else:
    _fcntl = _fcntl_module


class FileLockUnavailable(RuntimeError):
    """This platform has no ``fcntl.flock``: a SQLite index cannot lock out other writers."""


def _module() -> ModuleType:
    if _fcntl is None:
        raise FileLockUnavailable(
            "this platform has no fcntl.flock, which a SQLite index needs to serialise writers "
            "across processes: use PostgreSQL (--database-url postgresql+psycopg://...) here"
        )
    return _fcntl


def lock(target: int | IO[Any]) -> None:
    """Take the exclusive lock on an open file (descriptor or file object), waiting for it."""
    module = _module()
    module.flock(target, module.LOCK_EX)


def unlock(target: int | IO[Any]) -> None:
    module = _module()
    module.flock(target, module.LOCK_UN)
