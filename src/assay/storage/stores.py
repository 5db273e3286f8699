"""The blob store the settings name: a directory (the default), or an S3 bucket.

``blob_store`` empty: ``<data_dir>/files``. ``s3://bucket/prefix``: that bucket, staging in
``<data_dir>/staging`` (local to each server). With ``blob_store_fallback`` (a directory: the
old store during ``assay admin blobs migrate``), reads that miss the main store are answered
from the fallback, so a server switched to S3 before the copy is finished serves every file.
"""

from __future__ import annotations

from collections.abc import Iterator

from assay.config import Settings
from assay.storage.blobs import BlobInfo, BlobStore, ByteRange, FilesystemBlobStore, OpenedBlob, StagedBlob, StagingArea


def blob_store(settings: Settings, spec: str | None = None) -> BlobStore:
    """The store ``spec`` (default: the ``blob_store`` setting) names, wrapped with the fallback
    when ``blob_store_fallback`` is set and ``spec`` is not given."""
    target = settings.blob_store if spec is None else spec
    store = _plain(settings, target)
    if spec is None and settings.blob_store_fallback is not None:
        return FallbackBlobStore(store, FilesystemBlobStore(settings.blob_store_fallback, settings.quarantine_dir))
    return store


def _plain(settings: Settings, spec: str) -> BlobStore:
    if not spec:
        return FilesystemBlobStore(settings.blob_dir, settings.quarantine_dir)
    if spec.startswith("s3://"):
        from assay.storage.s3 import S3BlobStore, S3Location

        return S3BlobStore(
            S3Location.parse(spec),
            settings.data_dir / "staging",
            settings.quarantine_dir,
            endpoint_url=settings.s3_endpoint_url or None,
            multipart_threshold=settings.s3_multipart_threshold,
            presign_seconds=settings.blob_redirect_seconds,
        )
    from pathlib import Path

    return FilesystemBlobStore(Path(spec), settings.quarantine_dir)


class FallbackBlobStore:
    """Writes go to ``main``; reads try ``main``, then ``old``. Every key is in one or the
    other during a migration (it copies before it is done with a key, and nothing deletes from
    ``old`` but fsck's quarantine and removals, which delete from both)."""

    def __init__(self, main: BlobStore, old: BlobStore) -> None:
        self.main = main
        self.old = old

    @property
    def staging(self) -> StagingArea:
        return self.main.staging

    def stage(self) -> StagedBlob:
        return self.main.stage()

    def publish(self, staged: StagedBlob, key: str) -> None:
        self.main.publish(staged, key)

    def exists(self, key: str) -> bool:
        return self.main.exists(key) or self.old.exists(key)

    def open(self, key: str, byte_range: ByteRange | None = None) -> OpenedBlob:
        try:
            return self.main.open(key, byte_range)
        except FileNotFoundError:
            return self.old.open(key, byte_range)

    def download_url(self, key: str, *, filename: str, media_type: str) -> str | None:
        if self.main.exists(key):
            return self.main.download_url(key, filename=filename, media_type=media_type)
        return None  # only in the old store: streamed from it

    def delete(self, key: str) -> None:
        self.main.delete(key)
        self.old.delete(key)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        seen: set[str] = set()
        for info in self.main.iter_blobs():
            seen.add(info.key)
            yield info
        for info in self.old.iter_blobs():
            if info.key not in seen:
                yield info

    def quarantine(self, key: str, batch: str) -> bool:
        moved = self.main.quarantine(key, batch)
        return self.old.quarantine(key, batch) or moved

    def quarantine_location(self, batch: str) -> str:
        return self.main.quarantine_location(batch)

    def describe(self) -> str:
        return f"{self.main.describe()}, falling back to {self.old.describe()}"

    def abort_stale_uploads(self, older_than: float) -> int:
        return self.main.abort_stale_uploads(older_than)
