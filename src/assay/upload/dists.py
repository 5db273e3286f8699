"""What an uploaded distribution is: its filename's meaning and its core metadata.

Filenames are parsed with ``packaging.utils`` (wheel and sdist rules, PEP 427 / 491 / 625);
metadata with ``packaging.metadata`` (core metadata 1.0 - 2.5). Reading an archive is bounded
everywhere: the metadata file's size, the bytes decompressed while looking for it, and the
shape of a zip's central directory, so a crafted file costs little and gets a clear error.
"""

from __future__ import annotations

import gzip
import io
import itertools
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata, parse_email
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version


class DistError(ValueError):
    """The uploaded file is not an acceptable distribution; the message says why."""


@dataclass(frozen=True)
class DistFilename:
    filename: str
    name: NormalizedName
    version: Version
    packagetype: str  # "bdist_wheel" or "sdist"
    python_version: str  # "source" for sdists, the python tag(s) of a wheel

    @property
    def is_wheel(self) -> bool:
        return self.packagetype == "bdist_wheel"


def parse_filename(filename: str) -> DistFilename:
    """Validate an uploaded file's name and read its project name and version from it."""
    if not filename:
        raise DistError("the uploaded file has no filename")
    if len(filename) > 255:
        raise DistError("the filename is longer than 255 characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        raise DistError("the filename contains control characters")
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        raise DistError(f"invalid filename {filename!r}: a filename must not contain a path")
    if not filename.isascii():
        raise DistError(f"invalid filename {filename!r}: distribution filenames are ASCII")
    if filename.endswith(".whl"):
        try:
            name, version, _build, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise DistError(f"invalid wheel filename {filename!r}: {exc}") from None
        python_tags = sorted({t.interpreter for t in tags})
        return DistFilename(filename, name, version, "bdist_wheel", ".".join(python_tags))
    if filename.endswith((".tar.gz", ".zip")):
        try:
            name, version = parse_sdist_filename(filename)
        except InvalidSdistFilename as exc:
            raise DistError(f"invalid sdist filename {filename!r}: {exc}") from None
        return DistFilename(filename, name, version, "sdist", "source")
    # PyPI accepts exactly these extensions (PEP 527).
    raise DistError(
        f"invalid file extension in {filename!r}: use .whl for wheels and .tar.gz (or .zip) for sdists"
    )


@dataclass(frozen=True)
class DistMetadata:
    raw: bytes
    name: str
    version: str
    requires_python: str | None
    #: JSON-able view of the metadata (the JSON API's "info").
    fields: dict[str, Any]


@dataclass(frozen=True)
class ArchiveLimits:
    max_metadata: int
    #: Bytes we are willing to decompress while looking for an sdist's PKG-INFO, at most; the
    #: budget of one upload is also bounded by its own size (see ``scan_budget``).
    max_scan: int = 1024 * 1024 * 1024
    max_members: int = 200_000


def _zip_metadata(fh: BinaryIO, member: str, limits: ArchiveLimits, what: str) -> bytes:
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        # NotImplementedError: a central directory entry claiming a newer zip version than
        # zipfile reads ("zip file version 6.4"); found by tests/reliability/test_fuzz.py, it was
        # a 500 before.
        raise DistError(f"the {what} is not a valid zip archive: {exc}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise DistError(f"the {what} has more than {limits.max_members} members")
        _check_zip_shape(infos, what)
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise DistError(f"the {what} does not contain {member}") from None
        if info.file_size > limits.max_metadata:
            raise DistError(
                f"{member} is {info.file_size} bytes; the limit is {limits.max_metadata} bytes"
            )
        if info.flag_bits & 0x1:
            # zipfile refuses an encrypted member with a RuntimeError (a 500 before; found by
            # tests/reliability/test_fuzz.py); nothing in a distribution is ever encrypted.
            raise DistError(f"{member} in the {what} is encrypted")
        try:
            with zf.open(info) as src:
                data = src.read(limits.max_metadata + 1)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError, ValueError) as exc:
            # ValueError: a local header whose name is not the UTF-8 it claims (found by the fuzz
            # tests, a 500 before).
            raise DistError(f"cannot read {member} from the {what}: {exc}") from None
        if len(data) > limits.max_metadata:
            raise DistError(f"{member} is larger than the limit of {limits.max_metadata} bytes")
        return data


def _check_zip_shape(infos: list[zipfile.ZipInfo], what: str) -> None:
    """Refuse overlapping members, the trick of "non-recursive" zip bombs that reuse one
    compressed stream for many entries."""
    spans = sorted((i.header_offset, i.header_offset + i.compress_size, i.filename) for i in infos)
    for (start_a, end_a, name_a), (start_b, _end_b, name_b) in itertools.pairwise(spans):
        if start_b < end_a or start_a == start_b:
            raise DistError(
                f"the {what} has overlapping members ({name_a!r} and {name_b!r}): "
                "refusing a possible zip bomb"
            )


class _Budget(io.RawIOBase):
    """A reader that fails once more than ``limit`` bytes have come through."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.inner.read(len(b))
        self.seen += len(data)
        if self.seen > self.limit:
            raise DistError(
                f"the sdist decompresses to more than {self.limit} bytes before its PKG-INFO: "
                "refusing a possible decompression bomb"
            )
        b[: len(data)] = data
        return len(data)


#: Real sdists compress text about 4 to 8 times; 32 times the archive leaves ample room while a
#: 1 MiB gzip bomb costs a fraction of a second instead of seconds of decompression.
SCAN_RATIO = 32
SCAN_FLOOR = 16 * 1024 * 1024


def scan_budget(path: Path, limits: ArchiveLimits) -> int:
    return min(limits.max_scan, SCAN_RATIO * path.stat().st_size + SCAN_FLOOR)


def _tar_metadata(path: Path, member: str, limits: ArchiveLimits) -> bytes:
    try:
        with path.open("rb") as raw, gzip.GzipFile(fileobj=raw) as gz:
            stream = io.BufferedReader(_Budget(gz, scan_budget(path, limits)))  # type: ignore[arg-type]
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                for count, info in enumerate(tf):
                    if count > limits.max_members:
                        raise DistError(f"the sdist has more than {limits.max_members} members")
                    if info.name.removeprefix("./") != member:
                        continue
                    if not info.isfile():
                        raise DistError(f"{member} in the sdist is not a regular file")
                    if info.size > limits.max_metadata:
                        raise DistError(
                            f"{member} is {info.size} bytes; the limit is {limits.max_metadata} bytes"
                        )
                    src = tf.extractfile(info)
                    if src is None:  # pragma: no cover - regular files always have data
                        break
                    return src.read(limits.max_metadata + 1)
    except DistError:
        raise
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        raise DistError(f"the sdist is not a valid .tar.gz archive: {exc}") from None
    raise DistError(f"the sdist does not contain {member}")


def _is_version_slip(error: Exception) -> bool:
    return isinstance(error, InvalidMetadata) and "introduced in metadata version" in str(error)


def _parse_metadata(raw: bytes, where: str) -> DistMetadata:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DistError(f"{where} is not valid UTF-8: {exc}") from None
    parsed, unparsed = parse_email(text)
    problems = [k for k in ("metadata_version", "name", "version") if k not in parsed]
    if problems:
        missing = ", ".join(p.replace("_", "-").title() for p in problems)
        raise DistError(f"{where} is missing required field(s): {missing}")
    try:
        meta = Metadata.from_raw(parsed, validate=True)
    except ExceptionGroup as group:
        # A field newer than the declared Metadata-Version (License-File under 2.1, written by
        # older hatchling) is a labelling slip, not a broken file: PyPI accepted such uploads,
        # and installers read the field regardless. Every other problem is refused.
        errors = [e for e in group.exceptions if not _is_version_slip(e)]
        if errors:
            messages = "; ".join(str(e) for e in errors if isinstance(e, InvalidMetadata))
            raise DistError(f"{where} is not valid core metadata: {messages or group}") from None
        meta = Metadata.from_raw(parsed, validate=False)
    fields: dict[str, Any] = {}
    for key, value in parsed.items():
        if key == "description":
            continue  # large; the JSON API serves it from the metadata file's own bytes if wanted
        fields[key] = _jsonable(value)
    if "description" in parsed:
        fields["description"] = parsed["description"]
    del unparsed  # unknown fields are allowed (newer metadata); they are kept in the raw file
    return DistMetadata(
        raw=raw,
        name=str(meta.name),
        version=str(parsed["version"]),
        # PEP 503 / 691: data-requires-python is the file's Requires-Python as written (validated
        # above); str(SpecifierSet) would reorder it (">=3.8,<4" -> "<4,>=3.8").
        requires_python=(parsed.get("requires_python") or "").strip() or None,
        fields=fields,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def read_metadata(path: Path, dist: DistFilename, limits: ArchiveLimits) -> DistMetadata:
    """Extract and parse the distribution's own core metadata."""
    if dist.is_wheel:
        # Wheel spec: {distribution}-{version}.dist-info/METADATA, named as in the filename.
        name_part, version_part = dist.filename.split("-")[:2]
        member = f"{name_part}-{version_part}.dist-info/METADATA"
        with path.open("rb") as fh:
            raw = _zip_metadata(fh, member, limits, "wheel")
        return _parse_metadata(raw, member)
    base = dist.filename.removesuffix(".tar.gz").removesuffix(".zip")
    # Sdist spec: {name}-{version}/PKG-INFO at the top of the archive.
    member = f"{base}/PKG-INFO"
    if dist.filename.endswith(".zip"):
        with path.open("rb") as fh:
            raw = _zip_metadata(fh, member, limits, "sdist")
    else:
        raw = _tar_metadata(path, member, limits)
    if len(raw) > limits.max_metadata:
        raise DistError(f"{member} is larger than the limit of {limits.max_metadata} bytes")
    return _parse_metadata(raw, member)


def check_agreement(dist: DistFilename, meta: DistMetadata, form_name: str, form_version: str) -> None:
    """PyPI rule: the name and version in the filename, the form and the file's metadata agree."""
    names = {
        "the filename": dist.name,
        "the form's 'name' field": canonicalize_name(form_name),
        "the file's metadata": canonicalize_name(meta.name),
    }
    if len(set(names.values())) != 1:
        detail = ", ".join(f"{where} says {value!r}" for where, value in names.items())
        raise DistError(f"project names disagree: {detail}")
    try:
        versions = {
            "the filename": dist.version,
            "the form's 'version' field": Version(form_version),
            "the file's metadata": Version(meta.version),
        }
    except ValueError as exc:
        raise DistError(f"invalid version: {exc}") from None
    if len(set(versions.values())) != 1:
        detail = ", ".join(f"{where} says {str(value)!r}" for where, value in versions.items())
        raise DistError(f"versions disagree: {detail}")
