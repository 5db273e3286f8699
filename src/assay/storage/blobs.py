"""The blob store: where distribution files and their metadata files live.

The interface is small so an object store sits behind it as well as a directory
(``assay.storage.s3``; ``assay.storage.stores`` picks one from the settings). Writes are
two-phase: ``stage()`` gives a local temporary file that no reader can see; ``publish()`` makes
it visible under its key atomically (a rename here, one PUT or a completed multipart upload on
S3), so a crash never leaves half a file visible. Readers only ever reach a
blob through a database row, and rows are committed after their blobs are published, so a
published blob without a row (left by a crash between the two steps) is invisible; ``assay admin
fsck`` finds and removes such orphans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
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


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One stored blob, as a listing names it."""

    key: str
    size: int
    #: When it was stored (seconds since the epoch): fsck leaves young unreferenced blobs alone.
    modified: float


class BlobReader(Protocol):
    """A stored blob opened for reading: read it in chunks (a file, or an S3 response body)."""

    def read(self, n: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


#: A byte range as HTTP states one (RFC 9110 section 14.1.2): (first, last) inclusive;
#: (first, None) from first to the end; (None, n) the last n bytes.
ByteRange = tuple[int | None, int | None]


class RangeNotSatisfiable(Exception):
    """The range starts beyond the blob's end (HTTP 416)."""

    def __init__(self, total: int) -> None:
        super().__init__(f"range beyond the blob's {total} bytes")
        self.total = total


def resolve_range(byte_range: ByteRange, total: int) -> tuple[int, int]:
    """(offset, length) of ``byte_range`` in a blob of ``total`` bytes."""
    first, last = byte_range
    if first is None:
        length = min(last or 0, total)
        if length == 0:
            raise RangeNotSatisfiable(total)
        return total - length, length
    if first >= total:
        raise RangeNotSatisfiable(total)
    end = total - 1 if last is None else min(last, total - 1)
    return first, end - first + 1


@dataclass
class OpenedBlob:
    """``BlobStore.open``'s answer: the stream, its length (Content-Length) and, for a range,
    where it starts in a blob of how many bytes (Content-Range)."""

    reader: BlobReader
    size: int
    offset: int = 0
    total: int | None = None

    def chunks(self, size: int = 256 * 1024) -> Iterator[bytes]:
        """The bytes in chunks, closing the stream at the end (or when the consumer stops)."""
        try:
            while chunk := self.reader.read(size):
                yield chunk
        finally:
            self.reader.close()


class StagingArea:
    """A local directory of upload files in progress, invisible to readers. Every store stages
    locally (the bytes must be read back to check the archive before they are published); it
    is this machine's business, so its clean-up is not the blob store's."""

    def __init__(self, directory: Path, quarantine_root: Path) -> None:
        self.directory = directory
        self.quarantine_root = quarantine_root
        make_private_dirs(directory)

    def stage(self) -> StagedBlob:
        # Host and pid in the name let recovery remove a killed process's leftovers at once
        # (see ``clean``), while another live process's uploads are left alone.
        # ("@" cannot occur in a host name, so the name splits back unambiguously.)
        name = f"{os.getpid()}@{HOST}@{secrets.token_hex(8)}.part"
        return StagedBlob(self.directory / name)

    def entries(self) -> list[tuple[str, float]]:
        """Each staging file's name and modification time."""
        found = []
        for path in sorted(self.directory.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                found.append((path.name, path.stat().st_mtime))
        return found

    def clean(self, older_than: float) -> int:
        """Remove staging files left by killed uploads: those of dead processes on this host at
        once, any other only once older than ``older_than`` seconds (with several hosts on one
        store, a young file may belong to an upload still in flight elsewhere)."""
        removed = 0
        cutoff = time.time() - older_than
        for path in self.directory.iterdir():
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

    def quarantine(self, name: str, batch: str) -> bool:
        """Move staging file ``name`` aside into ``<quarantine>/<batch>/.staging/``; False when it
        is gone already. Never the directory itself: running servers stage every upload there."""
        source = self.directory / name
        if "/" in name or not source.is_file():
            return False
        target = self.quarantine_root / batch / ".staging" / name
        make_private_dirs(target.parent)
        shutil.move(source, target)  # another filesystem perhaps (S3 store: staging is local)
        return True


class BlobStore(Protocol):
    """Where published blobs live: a directory, or an S3-compatible bucket (assay.storage.s3).

    Publishing is atomic: a blob is visible under its key whole or not at all. Reads go by key
    only; no caller sees a path, so nothing outside a store assumes a local filesystem."""

    @property
    def staging(self) -> StagingArea: ...
    def stage(self) -> StagedBlob: ...
    def publish(self, staged: StagedBlob, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def open(self, key: str, byte_range: ByteRange | None = None) -> OpenedBlob:
        """The blob's bytes (or a range of them) as a stream; FileNotFoundError when there is
        no such blob, RangeNotSatisfiable when the range starts beyond it."""
        ...

    def download_url(self, key: str, *, filename: str, media_type: str) -> str | None:
        """A URL the client may fetch the blob from directly (a presigned one), or None: stream."""
        ...

    def delete(self, key: str) -> None: ...
    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every published blob (not staging files, not quarantined ones)."""
        ...

    def quarantine(self, key: str, batch: str) -> bool:
        """Move the blob out of the store's key space into quarantine ``batch`` (bytes are kept,
        never deleted); False when there is no such blob."""
        ...

    def quarantine_location(self, batch: str) -> str:
        """Where ``quarantine(..., batch)`` puts blobs, for the operator."""
        ...

    def describe(self) -> str:
        """Where the blobs are, for start-up and admin messages."""
        ...

    def abort_stale_uploads(self, older_than: float) -> int:
        """Free what interrupted publishes left outside the key space (S3: multipart uploads
        never completed, which list no object); returns how many."""
        ...


class FilesystemBlobStore:
    """Blobs as files under ``root``; staging files under ``root/.staging`` (same filesystem,
    so publishing is a rename); quarantined blobs under ``quarantine_root`` (default: the
    data directory's ``quarantine``, beside ``root``)."""

    STAGING = ".staging"

    def __init__(self, root: Path, quarantine_root: Path | None = None) -> None:
        self.root = root
        self.quarantine_root = quarantine_root if quarantine_root is not None else root.parent / "quarantine"
        self.staging_dir = root / self.STAGING
        self._staging = StagingArea(self.staging_dir, self.quarantine_root)

    @property
    def staging(self) -> StagingArea:
        return self._staging

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def stage(self) -> StagedBlob:
        return self._staging.stage()

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

    def open(self, key: str, byte_range: ByteRange | None = None) -> OpenedBlob:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no blob {key!r}")
        fh = path.open("rb")
        total = os.fstat(fh.fileno()).st_size
        if byte_range is None:
            return OpenedBlob(fh, total, 0, total)
        try:
            offset, length = resolve_range(byte_range, total)
        except RangeNotSatisfiable:
            fh.close()
            raise
        fh.seek(offset)
        return OpenedBlob(_Limited(fh, length), length, offset, total)

    def download_url(self, key: str, *, filename: str, media_type: str) -> str | None:
        return None  # the index serves its files itself

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._prune(path.parent)

    def _prune(self, parent: Path) -> None:
        """Remove now-empty parent directories, up to the root."""
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and self.STAGING in dirnames:
                dirnames.remove(self.STAGING)
            for name in filenames:
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue  # removed meanwhile
                yield BlobInfo(path.relative_to(self.root).as_posix(), st.st_size, st.st_mtime)

    def quarantine(self, key: str, batch: str) -> bool:
        source = self._path(key)
        if not source.is_file():
            return False
        target = self.quarantine_root / batch / key
        make_private_dirs(target.parent)
        shutil.move(source, target)
        self._prune(source.parent)
        return True

    def quarantine_location(self, batch: str) -> str:
        return os.fspath(self.quarantine_root / batch)

    def describe(self) -> str:
        return f"files in {self.root.resolve()}"

    def abort_stale_uploads(self, older_than: float) -> int:
        return 0  # a rename is never left half done


class _Limited:
    """The first ``left`` bytes of a file."""

    def __init__(self, fh: BinaryIO, left: int) -> None:
        self.fh = fh
        self.left = left

    def read(self, n: int = -1, /) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.fh.read(n) if n else b""
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.fh.close()


def process_alive(pid: int) -> bool:
    """Whether a process of this host exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True
