"""The blob store: where distribution files and their metadata files live.

The interface is small so an object store can sit behind it later. Writes are two-phase:
``stage()`` gives a local temporary file that no reader can see; ``publish()`` moves it to its
key atomically (rename), so a crash never leaves half a file visible. Readers only ever reach a
blob through a database row, and rows are committed after their blobs are published, so a
published blob without a row (left by a crash between the two steps) is invisible; ``assay admin
fsck`` finds and removes such orphans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from assay.storage.modes import make_private_dirs, open_private

#: This machine's name, recorded with work in progress so recovery can tell its own leftovers.
HOST = socket.gethostname()

log = logging.getLogger(__name__)


class BlobKeyError(ValueError):
    """A key that could escape the store (absolute, ``..``, empty or control characters)."""


def check_key(key: str) -> str:
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or c in "\\\x7f" for c in key)
    ):
        raise BlobKeyError(f"invalid blob key {key!r}")
    return key


@dataclass
class StagedBlob:
    """A temporary file being written; invisible until published."""

    path: Path
    _fh: BinaryIO | None = field(default=None, repr=False)
    size: int = 0

    def open(self) -> BinaryIO:
        if self._fh is None:
            # 0600 whatever the umask (issue 10, item 7); the rename that publishes keeps it.
            fd = open_private(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            self._fh = os.fdopen(fd, "wb")
        return self._fh

    def write(self, data: bytes) -> None:
        self.open().write(data)
        self.size += len(data)

    def close(self) -> None:
        """Flush and fsync, so the bytes are on disk before the rename that publishes them.
        A failure (ENOSPC when the last buffered bytes meet a full disk, EIO) propagates as the
        OSError it is; the file handle is closed either way, and ``discard`` still removes it."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            with contextlib.suppress(OSError):
                # After a failed flush this flushes again and fails the same way; the
                # descriptor is closed regardless (io.BufferedWriter.close).
                fh.close()

    def discard(self) -> None:
        """Remove the staging file, whatever state it is in; never raises (it runs in cleanup
        paths, where an error would hide the one that got us there). Before issue 10 a full
        disk made the close here raise again and skip the unlink, leaving the file behind."""
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - the staging directory itself became unusable
            log.exception("could not remove staging file %s", self.path)


class BlobStore(Protocol):
    def stage(self) -> StagedBlob: ...
    def publish(self, staged: StagedBlob, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def open(self, key: str) -> BinaryIO: ...
    def local_path(self, key: str) -> Path | None: ...
    def delete(self, key: str) -> None: ...
    def iter_keys(self) -> Iterator[str]: ...
    def clean_staging(self, older_than: float) -> int: ...


class FilesystemBlobStore:
    """Blobs as files under ``root``; staging files under ``root/.staging`` (same filesystem,
    so publishing is a rename)."""

    STAGING = ".staging"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_dir = root / self.STAGING
        make_private_dirs(self.staging_dir)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def stage(self) -> StagedBlob:
        # Host and pid in the name let recovery remove a killed process's leftovers at once
        # (see ``clean_staging``), while another live process's uploads are left alone.
        # ("@" cannot occur in a host name, so the name splits back unambiguously.)
        name = f"{os.getpid()}@{HOST}@{secrets.token_hex(8)}.part"
        return StagedBlob(self.staging_dir / name)

    def publish(self, staged: StagedBlob, key: str) -> None:
        staged.close()
        target = self._path(key)
        make_private_dirs(target.parent)
        os.replace(staged.path, target)
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        # Remove now-empty parent directories, up to the root.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def iter_keys(self) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and self.STAGING in dirnames:
                dirnames.remove(self.STAGING)
            for name in filenames:
                yield (Path(dirpath) / name).relative_to(self.root).as_posix()

    def clean_staging(self, older_than: float) -> int:
        """Remove staging files left by killed uploads: those of dead processes on this host at
        once, any other only once older than ``older_than`` seconds (with several hosts on one
        store, a young file may belong to an upload still in flight elsewhere)."""
        removed = 0
        cutoff = time.time() - older_than
        for path in self.staging_dir.iterdir():
            parts = path.name.split("@")
            try:
                dead_here = (
                    len(parts) == 3 and parts[1] == HOST and parts[0].isdigit() and not process_alive(int(parts[0]))
                )
                if dead_here or path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def process_alive(pid: int) -> bool:
    """Whether a process of this host exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True
