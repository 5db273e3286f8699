"""Where things are: blob keys and the URLs the index hands out for them."""

from __future__ import annotations

from urllib.parse import quote

from assay.indexes import IndexRef

FILES_PREFIX = "/files/"
METADATA_SUFFIX = ".metadata"


def blob_key(sha256: str, filename: str, index: IndexRef | None = None) -> str:
    """Content-addressed and filename-qualified, like PyPI's ``packages/ab/cd/<rest>/<filename>``,
    below the index's blob prefix (none for the default index).

    The same bytes under the same name always map to the same key, which makes a retried
    upload idempotent at the storage level.
    """
    prefix = index.blob_prefix if index is not None else ""
    return f"{prefix}{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}/{filename}"


def public_key(index: IndexRef, key: str) -> str:
    """A blob key as the index's ``/files/`` URL names it: without the index's blob prefix,
    which the URL's own ``/<index>/`` already says (``/team/files/ab/cd/...``)."""
    return key.removeprefix(index.blob_prefix)


def stored_key(index: IndexRef, public: str) -> str:
    """The blob key behind ``/<index>/files/<public>``."""
    return index.blob_prefix + public


def metadata_key(file_blob_key: str) -> str:
    # PEP 658: the metadata file lives at the distribution's URL + ".metadata".
    return file_blob_key + METADATA_SUFFIX


def file_path(key: str) -> str:
    """The absolute path (below the site root) where a blob is served."""
    return FILES_PREFIX + quote(key)


def provenance_path(normalized_name: str, version: str, filename: str) -> str:
    """PEP 740 Integrity API: ``/integrity/<project>/<version>/<filename>/provenance``."""
    return f"/integrity/{quote(normalized_name)}/{quote(version)}/{quote(filename)}/provenance"
