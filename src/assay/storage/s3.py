"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), with boto3.

Why boto3 and not obstore: it is the reference client of the S3 API (AWS keeps it in step with
the service, and MinIO and Ceph test against it), it reads region, credentials and
``AWS_ENDPOINT_URL`` from the usual AWS environment variables and files with no code of ours,
its transfer manager (s3transfer) does multipart uploads with retries, and it presigns URLs
locally. obstore is faster per call, but it is a young binding whose API still moves; the hot
read path here is one GET streamed through, where the client library is not what costs.

How the store keeps the guarantees of ``assay.storage.blobs``:

* staging stays on the local disk (``StagingArea``): the archive is read back and checked
  before anything is sent;
* publishing is one PUT below ``multipart_threshold`` bytes, a multipart upload above it. S3
  makes an object visible only when its PUT or its CompleteMultipartUpload succeeds, never in
  part; an interrupted multipart upload lists no object (``abort_stale_uploads`` frees its
  parts);
* since December 2020 S3 is strongly consistent (read-after-write and list-after-write), so
  the publish journal of ``assay.storage.recovery`` holds as on a filesystem: the journal entry
  is committed before the PUT, and recovery deletes an unreferenced object in the transaction
  that clears the entry.
* quarantine copies the object under ``<prefix>.quarantine/<batch>/`` and then deletes it (S3
  has no rename); listings skip that prefix.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from assay.storage.blobs import (
    BlobInfo,
    ByteRange,
    OpenedBlob,
    RangeNotSatisfiable,
    StagedBlob,
    StagingArea,
    check_key,
)

QUARANTINE = ".quarantine/"

#: S3's smallest part (except the last) is 5 MiB.
MIN_PART = 5 * 1024 * 1024


def _code(exc: Exception) -> str:
    """The S3 error code of a botocore ClientError ("" for anything else)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return ""
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3LocationError(ValueError):
    """A ``blob_store`` value that is not ``s3://bucket[/prefix]``."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    #: Empty, or ending in "/".
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise S3LocationError(f"expected s3://bucket/prefix, got {url!r}")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, prefix + "/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class S3BlobStore:
    def __init__(
        self,
        location: S3Location,
        staging_dir: Path,
        quarantine_root: Path,
        *,
        endpoint_url: str | None = None,
        multipart_threshold: int = 64 * 1024 * 1024,
        presign_seconds: int = 0,
        client: Any = None,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.location = location
        self.bucket = location.bucket
        self.prefix = location.prefix
        self._staging = StagingArea(staging_dir, quarantine_root)
        self.presign_seconds = presign_seconds
        if client is None:
            # Region, credentials and (without endpoint_url) AWS_ENDPOINT_URL come from the
            # standard AWS environment variables and files, as for the AWS CLI. Retries in
            # "standard" mode: throttling and 5xx answers are retried with backoff.
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url or None,
                config=Config(retries={"mode": "standard", "max_attempts": 5}, signature_version="s3v4"),
            )
        self.client = client
        self._transfer = TransferConfig(
            multipart_threshold=max(multipart_threshold, MIN_PART),
            multipart_chunksize=max(multipart_threshold, MIN_PART),
            use_threads=False,  # one request's upload: a worker thread already runs it
        )

    @property
    def staging(self) -> StagingArea:
        return self._staging

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _missing(self, exc: Exception) -> bool:
        return _code(exc) in {"404", "NoSuchKey", "NotFound"}

    def stage(self) -> StagedBlob:
        return self._staging.stage()

    def publish(self, staged: StagedBlob, key: str) -> None:
        staged.close()
        # upload_file: one PutObject below the threshold, else CreateMultipartUpload + parts +
        # CompleteMultipartUpload (aborted by s3transfer on failure). Visible only when done.
        self.client.upload_file(os.fspath(staged.path), self.bucket, self._name(key), Config=self._transfer)
        # The staging file is the caller's to discard, as with the filesystem store's rename.

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except Exception as exc:
            if self._missing(exc):
                return False
            raise
        return True

    def open(self, key: str, byte_range: ByteRange | None = None) -> OpenedBlob:
        extra = {}
        if byte_range is not None:
            first, last = byte_range
            extra["Range"] = f"bytes={'' if first is None else first}-{'' if last is None else last}"
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key), **extra)
        except Exception as exc:
            if self._missing(exc):
                raise FileNotFoundError(f"no blob {key!r} in {self.location}") from None
            if _code(exc) == "InvalidRange":
                head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
                raise RangeNotSatisfiable(int(head["ContentLength"])) from None
            raise
        length = int(answer["ContentLength"])
        if byte_range is None or "ContentRange" not in answer:
            return OpenedBlob(answer["Body"], length, 0, length)
        # "bytes 0-9/1234"
        span, _, total = str(answer["ContentRange"]).removeprefix("bytes ").partition("/")
        return OpenedBlob(answer["Body"], length, int(span.split("-")[0]), int(total))

    def download_url(self, key: str, *, filename: str, media_type: str) -> str | None:
        if self.presign_seconds <= 0:
            return None
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._name(key),
                # The object store answers with the headers the index would have sent.
                "ResponseContentType": media_type,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=self.presign_seconds,
        )
        return url

    def delete(self, key: str) -> None:
        name = self._name(key)
        self.client.delete_object(Bucket=self.bucket, Key=name)
        # A publish killed mid-way through a multipart upload leaves its parts, listed as an
        # upload in progress (never as an object). Recovery deletes a journaled key whose
        # upload was cut off: its parts go too. No live upload can hold this key meanwhile:
        # the journal entry (unique per key) is held by whoever deletes it.
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=name):
            for upload in page.get("Uploads", []):
                if upload["Key"] == name:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload["UploadId"])

    def iter_blobs(self) -> Iterator[BlobInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix) :]
                if key.startswith(QUARANTINE):
                    continue
                modified: dt.datetime = obj["LastModified"]
                yield BlobInfo(key, int(obj["Size"]), modified.timestamp())

    def quarantine(self, key: str, batch: str) -> bool:
        name = self._name(key)
        target = f"{self.prefix}{QUARANTINE}{batch}/{key}"
        try:
            # Server-side copy (no bytes through us); multipart copy for objects beyond 5 GiB.
            self.client.copy({"Bucket": self.bucket, "Key": name}, self.bucket, target, Config=self._transfer)
        except Exception as exc:
            if self._missing(exc):
                return False
            raise
        self.client.delete_object(Bucket=self.bucket, Key=name)
        return True

    def quarantine_location(self, batch: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{QUARANTINE}{batch}/"

    def describe(self) -> str:
        endpoint = self.client.meta.endpoint_url
        return f"files in {self.location} (endpoint {endpoint})"

    def abort_stale_uploads(self, older_than: float) -> int:
        """Abort multipart uploads under the prefix begun more than ``older_than`` seconds ago:
        left by a killed process, they list no object but keep their parts (and their cost)."""
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than)
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted
