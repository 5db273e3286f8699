"""Where things are: blob keys and the URLs the index hands out for them."""

from __future__ import annotations

from urllib.parse import quote

FILES_PREFIX = "/files/"
METADATA_SUFFIX = ".metadata"


def blob_key(sha256: str, filename: str) -> str:
    """Content-addressed and filename-qualified, like PyPI's ``packages/ab/cd/<rest>/<filename>``.

    The same bytes under the same name always map to the same key, which makes a retried
    upload idempotent at the storage level.
    """
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}/{filename}"


def metadata_key(file_blob_key: str) -> str:
    # PEP 658: the metadata file lives at the distribution's URL + ".metadata".
    return file_blob_key + METADATA_SUFFIX


def file_path(key: str) -> str:
    """The absolute path (below the site root) where a blob is served."""
    return FILES_PREFIX + quote(key)


def provenance_path(normalized_name: str, version: str, filename: str) -> str:
    """PEP 740 Integrity API: ``/integrity/<project>/<version>/<filename>/provenance``."""
    return f"/integrity/{quote(normalized_name)}/{quote(version)}/{quote(filename)}/provenance"
