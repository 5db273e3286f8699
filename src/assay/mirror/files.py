"""First download of a mirrored file: stream from upstream into staging, check the sha256 the
upstream page lists before anything is published, publish, then commit the row.

Crash safety is upload's (``assay.upload.service``, ``assay.storage.recovery``): the blob keys
are journalled (``PendingBlob``) before the rename that publishes them, and the journal entries
are deleted in the transaction that adds the ``MirrorFile`` row. A process killed at any point
leaves either nothing visible (no row: recovery removes the blob and the staging file) or the
complete file. Bytes that do not match are never published: nothing is kept.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import anyio
import httpx
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assay.index.paths import blob_key, metadata_key
from assay.mirror.upstream import UpstreamFile
from assay.storage.blobs import HOST, BlobStore, StagedBlob
from assay.storage.db import Database
from assay.storage.models import MirrorFile, MirrorMetadata, PendingBlob

log = logging.getLogger(__name__)

#: Where mirrored blobs live in the store: their own namespace, per index, so a hosted upload
#: and a mirrored file never share a key (``fsck`` and recovery know both kinds of row).
MIRROR_PREFIX = "mirror"
#: Largest core metadata file taken from upstream (as ``max_metadata_size`` for uploads).
MAX_METADATA_BYTES = 4 * 1024 * 1024


class FileRefused(Exception):
    """Upstream's bytes cannot be served; the message says why (it goes in the 404/502 body)."""


class InProgress(Exception):
    """Another worker is fetching this very file right now."""


def mirror_key(index_id: int, sha256: str, filename: str) -> str:
    return f"{MIRROR_PREFIX}/{index_id}/{blob_key(sha256, filename)}"


@dataclass(frozen=True)
class Kept:
    """A mirrored file as the database records it."""

    filename: str
    sha256: str
    size: int
    blob_key: str
    metadata_blob_key: str | None
    metadata_sha256: str | None


def _kept(row: MirrorFile) -> Kept:
    return Kept(row.filename, row.sha256, row.size, row.blob_key, row.metadata_blob_key, row.metadata_sha256)


@dataclass(frozen=True)
class KeptMetadata:
    """A core metadata file (PEP 658) held on its own."""

    blob_key: str
    sha256: str
    size: int


def kept_metadata(db: Database, index_id: int, filename: str, file_sha256: str) -> KeptMetadata | None:
    with db.read() as session:
        row = session.execute(
            sa.select(MirrorMetadata).where(
                MirrorMetadata.index_id == index_id,
                MirrorMetadata.filename == filename,
                MirrorMetadata.file_sha256 == file_sha256,
            )
        ).scalar_one_or_none()
        return KeptMetadata(row.blob_key, row.sha256, row.size) if row else None


def kept_file(db: Database, index_id: int, filename: str) -> Kept | None:
    with db.read() as session:
        row = session.execute(
            sa.select(MirrorFile).where(MirrorFile.index_id == index_id, MirrorFile.filename == filename)
        ).scalar_one_or_none()
        return _kept(row) if row else None


async def _download(
    client: httpx.AsyncClient, url: str, staged: StagedBlob, *, limit: int, what: str
) -> tuple[str, int]:
    """Stream ``url`` into ``staged``; its sha256 and size. ``FileRefused`` on any trouble."""
    digest = hashlib.sha256()
    size = 0
    try:
        async with client.stream("GET", url, follow_redirects=True) as response:
            if response.status_code != 200:
                raise FileRefused(f"upstream answered {response.status_code} for {what} ({url})")
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FileRefused(f"upstream sent more than {limit} bytes for {what}")
                digest.update(chunk)
                staged.write(chunk)
    except httpx.HTTPError as exc:
        raise FileRefused(f"upstream is unreachable for {what}: {type(exc).__name__}: {exc}") from None
    staged.close()
    return digest.hexdigest(), size


def owned(session: Session, key: str) -> bool:
    """Whether a mirror row refers to the blob ``key`` (a file, its metadata, or metadata
    held on its own)."""
    return (
        session.execute(
            sa.select(MirrorFile.id).where(sa.or_(MirrorFile.blob_key == key, MirrorFile.metadata_blob_key == key))
        ).first()
        is not None
        or session.execute(sa.select(MirrorMetadata.id).where(MirrorMetadata.blob_key == key)).first() is not None
    )


class FileFetcher:
    def __init__(self, db: Database, blobs: BlobStore, client: httpx.AsyncClient, *, max_size: int) -> None:
        self.db = db
        self.blobs = blobs
        self.client = client
        self.max_size = max_size

    async def fetch(self, index_id: int, project: str, entry: UpstreamFile) -> Kept:
        """Fetch ``entry`` once; ``FileRefused`` when its bytes do not match the page."""
        expected = entry.sha256
        if expected is None:
            # PEP 691 recommends sha256 and PyPI always gives it; without it nothing can be
            # checked before serving, and "checked before served" is the rule.
            raise FileRefused(f"upstream lists no sha256 for {entry.filename}; it cannot be checked")
        key = mirror_key(index_id, expected, entry.filename)
        mkey = metadata_key(key) if entry.has_metadata else None
        keys = [key] + ([mkey] if mkey else [])
        content = self.blobs.stage()
        metadata = self.blobs.stage() if mkey else None
        journaled = False
        try:
            limit = min(self.max_size, entry.size) if entry.size is not None else self.max_size
            sha, size = await _download(self.client, entry.url, content, limit=limit, what=entry.filename)
            if sha != expected:
                raise FileRefused(
                    f"upstream served bytes for {entry.filename} whose sha256 is {sha}, "
                    f"not the {expected} its page lists; nothing was kept"
                )
            if entry.size is not None and size != entry.size:
                raise FileRefused(f"upstream served {size} bytes for {entry.filename}, its page says {entry.size}")
            msha = None
            if metadata is not None:
                msha, _ = await _download(
                    self.client,
                    entry.url + ".metadata",
                    metadata,
                    limit=MAX_METADATA_BYTES,
                    what=f"{entry.filename}.metadata",
                )
                if entry.metadata_sha256 is not None and msha != entry.metadata_sha256:
                    raise FileRefused(
                        f"upstream's metadata file for {entry.filename} has sha256 {msha}, "
                        f"not the {entry.metadata_sha256} its page lists"
                    )
            if not await anyio.to_thread.run_sync(self._journal, keys):
                raise InProgress(entry.filename)
            journaled = True

            def publish_and_commit() -> Kept:
                self.blobs.publish(content, key)
                if metadata is not None and mkey is not None:
                    self.blobs.publish(metadata, mkey)
                with self.db.write() as session:
                    row = MirrorFile(
                        index_id=index_id,
                        project=project,
                        filename=entry.filename,
                        sha256=sha,
                        size=size,
                        blob_key=key,
                        metadata_blob_key=mkey,
                        metadata_sha256=msha,
                        upstream_url=entry.url,
                    )
                    session.add(row)
                    session.flush()
                    # The row owns the blobs from this commit on: the journal entries go with it.
                    session.execute(sa.delete(PendingBlob).where(PendingBlob.key.in_(keys)))
                    return _kept(row)

            try:
                kept = await anyio.to_thread.run_sync(publish_and_commit)
            except IntegrityError:
                # Another worker committed this file first (same name): theirs stands.
                winner = await anyio.to_thread.run_sync(kept_file, self.db, index_id, entry.filename)
                if winner is None:
                    raise
                return winner
            journaled = False
            log.info("mirrored %s (%d bytes, sha256 %s) from %s", entry.filename, size, sha, entry.url)
            return kept
        finally:
            if journaled:
                await anyio.to_thread.run_sync(self._abandon, keys)
            content.discard()
            if metadata is not None:
                metadata.discard()

    async def fetch_metadata(self, index_id: int, entry: UpstreamFile) -> KeptMetadata:
        """Fetch only ``entry``'s core metadata file (what a resolver reads before it picks a
        file), checked against the hash upstream's page lists; ``FileRefused`` otherwise."""
        expected = entry.metadata_sha256
        if entry.sha256 is None or expected is None:
            raise FileRefused(f"upstream lists no sha256 for the metadata of {entry.filename}; it cannot be checked")
        key = metadata_key(mirror_key(index_id, entry.sha256, entry.filename))
        staged = self.blobs.stage()
        journaled = False
        try:
            sha, size = await _download(
                self.client,
                entry.url + ".metadata",
                staged,
                limit=MAX_METADATA_BYTES,
                what=f"{entry.filename}.metadata",
            )
            if sha != expected:
                raise FileRefused(
                    f"upstream served a metadata file for {entry.filename} whose sha256 is {sha}, "
                    f"not the {expected} its page lists; nothing was kept"
                )
            if not await anyio.to_thread.run_sync(self._journal, [key]):
                raise InProgress(entry.filename + ".metadata")
            journaled = True
            file_sha = entry.sha256

            def publish_and_commit() -> KeptMetadata:
                self.blobs.publish(staged, key)
                with self.db.write() as session:
                    session.add(
                        MirrorMetadata(
                            index_id=index_id,
                            filename=entry.filename,
                            file_sha256=file_sha,
                            sha256=sha,
                            size=size,
                            blob_key=key,
                        )
                    )
                    session.execute(sa.delete(PendingBlob).where(PendingBlob.key == key))
                return KeptMetadata(key, sha, size)

            try:
                kept = await anyio.to_thread.run_sync(publish_and_commit)
            except IntegrityError:
                winner = await anyio.to_thread.run_sync(kept_metadata, self.db, index_id, entry.filename, file_sha)
                if winner is None:
                    raise
                return winner
            journaled = False
            return kept
        finally:
            if journaled:
                await anyio.to_thread.run_sync(self._abandon, [key])
            staged.discard()

    def _journal(self, keys: list[str]) -> bool:
        try:
            with self.db.write() as session:
                for k in keys:
                    session.add(PendingBlob(key=k, host=HOST, pid=os.getpid()))
        except IntegrityError:
            return False
        return True

    def _abandon(self, keys: list[str]) -> None:
        """Undo a publish whose row was not committed (as upload's ``_abandon``)."""
        for k in keys:
            try:
                with self.db.write() as session:
                    if not owned(session, k):
                        self.blobs.delete(k)
                    session.execute(sa.delete(PendingBlob).where(PendingBlob.key == k))
            except Exception as exc:  # the database went away: recovery takes it at start-up
                log.warning("could not clean up mirrored blob %s after a failed fetch: %s", k, exc)
