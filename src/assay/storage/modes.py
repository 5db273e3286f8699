"""Private file modes for everything under the data directory (issue 10, item 7).

The database, its WAL, the blobs and the quarantine hold every file of a private index (and the
token hashes): under the common umask 022 they would be world-readable, and ``--private`` would
keep out HTTP clients but not the machine's other users. So assay creates directories 0700 and
files 0600 itself, whatever the umask (a umask can only clear bits, never add them), and
``assay admin fsck`` reports anything looser (``--repair`` tightens it).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
#: Group and other bits: any of them set is "looser than private".
_OPEN_BITS = 0o077


def make_private_dirs(path: Path) -> None:
    """``mkdir -p`` with every directory it creates 0700 (``Path.mkdir(parents=True, mode=...)``
    gives the mode to the last one only; its parents get 0777 minus the umask)."""
    if path.is_dir():
        return
    parent = path.parent
    if parent != path and not parent.is_dir():
        make_private_dirs(parent)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (for files a library then opens,
    e.g. SQLite's database: SQLite gives its -wal and -shm files the database file's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` creating the file 0600."""
    return os.open(path, flags, FILE_MODE)


def loose_modes(root: Path) -> Iterator[tuple[Path, int, int]]:
    """``(path, mode, expected)`` for ``root`` and everything under it that group or others may
    read, write or enter. Symbolic links are not followed (their own mode means nothing)."""
    for path in [root, *sorted(_walk(root))]:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        mode = stat.S_IMODE(st.st_mode)
        if mode & _OPEN_BITS:
            yield path, mode, DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in (*dirnames, *filenames):
            yield base / name


def tighten(path: Path) -> None:
    """Clear the group and other bits (the owner's stay as they are)."""
    with contextlib.suppress(FileNotFoundError):  # removed meanwhile (an upload's staging file)
        os.chmod(path, stat.S_IMODE(path.lstat().st_mode) & ~_OPEN_BITS)
