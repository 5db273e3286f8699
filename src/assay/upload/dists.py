"""What an uploaded distribution is: its filename's meaning and its core metadata.

Filenames are parsed with ``packaging.utils`` (wheel and sdist rules, PEP 427 / 491 / 625);
metadata with ``packaging.metadata`` (core metadata 1.0 - 2.5). Reading an archive is bounded
everywhere: the metadata file's size, the bytes decompressed while looking for it, the number of
members (read from a zip's end record and counted before ``zipfile`` parses anything; counted as
a tar is walked) and the shape of a zip's central directory, so a crafted file costs little and
gets a clear error.
"""

from __future__ import annotations

import gzip
import io
import itertools
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self

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


# Record layouts from PKWARE's APPNOTE.TXT (the .ZIP File Format Specification), read with
# ``struct`` only as far as deciding whether the central directory is worth handing to zipfile.
#: 4.3.16 end of central directory record: signature, this disk, the directory's disk, entries
#: on this disk, entries in all, directory size, directory offset, comment length.
_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD_SIG = b"PK\x05\x06"
#: 4.3.15 zip64 end of central directory locator: signature, disk, record offset, disks.
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
#: 4.3.14 zip64 end of central directory record (without its extensible data sector):
#: signature, record size, versions, disks, entries on this disk, entries in all, directory
#: size, directory offset.
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_ZIP64_EOCD_SIG = b"PK\x06\x06"
#: 4.3.12 central file header: the signature, then (after 24 bytes of versions, flags, method,
#: times, CRC and sizes) the name, extra field and comment lengths, then 12 more fixed bytes.
_CENTRAL = struct.Struct("<4s24xHHH12x")
_CENTRAL_SIG = b"PK\x01\x02"
#: The largest a central file header can be: three 16-bit lengths after the fixed part.
_CENTRAL_MAX = _CENTRAL.size + 3 * 0xFFFF
#: 4.3.16: the comment after the end record is at most 65,535 bytes.
_TAIL = _EOCD.size + 0xFFFF
_WALK_CHUNK = 1024 * 1024


def _zip_directory(fh: BinaryIO) -> tuple[int, int, int] | None:
    """(declared entries, central directory start, its size) from the end records, found the
    way ``zipfile`` finds them (so both read the same directory); None when there is no end
    record (``zipfile`` then says what is wrong). Reads at most 64 KiB plus a few dozen bytes."""
    size = fh.seek(0, io.SEEK_END)
    if size < _EOCD.size:
        return None
    fh.seek(max(0, size - _TAIL))
    tail = fh.read()
    # zipfile first takes a comment-less end record at the very end, else the last signature.
    at = len(tail) - _EOCD.size
    if not (tail[at : at + 4] == _EOCD_SIG and tail[-2:] == b"\0\0"):
        at = tail.rfind(_EOCD_SIG)
        if at < 0 or at + _EOCD.size > len(tail):
            return None
    eocd_at = size - len(tail) + at
    _sig, _disk, _cd_disk, _here, entries, cd_size, _cd_offset, _comment = _EOCD.unpack_from(tail, at)
    directory_end = eocd_at
    # 4.3.15 / 4.3.14: a zip64 locator right before the end record points at the zip64 record,
    # which zipfile reads from right before the locator (4.3.6: the records are contiguous).
    locator_at = eocd_at - _ZIP64_LOCATOR.size
    record_at = locator_at - _ZIP64_EOCD.size
    if record_at >= 0:
        fh.seek(record_at)
        raw = fh.read(_ZIP64_EOCD.size + _ZIP64_LOCATOR.size)
        if raw[_ZIP64_EOCD.size : _ZIP64_EOCD.size + 4] == _ZIP64_LOCATOR_SIG and raw[:4] == _ZIP64_EOCD_SIG:
            fields = _ZIP64_EOCD.unpack_from(raw)
            entries, cd_size = fields[7], fields[8]
            directory_end = record_at
    # zipfile reads the directory from just before the end records, whatever offset they claim
    # (so a zip with data prepended still opens).
    return entries, directory_end - cd_size, cd_size


def _count_central_headers(fh: BinaryIO, start: int, size: int, limit: int) -> int:
    """How many central file headers the directory really holds, up to ``limit + 1``: zipfile
    parses the directory until its declared size is used up, whatever count the end record
    claims, so a lying count must not decide alone. Hops from header to header through 1 MiB
    reads (bounded memory); stops at the first bytes that are no header (zipfile reports those)."""
    fh.seek(start)
    remaining = size
    buf = b""
    pos = 0
    count = 0
    while count <= limit:
        if pos > len(buf):  # a header's name/extra/comment ran past the buffer: skip the rest
            skip = min(pos - len(buf), remaining)
            fh.seek(skip, io.SEEK_CUR)
            remaining -= skip
            buf, pos = b"", 0
        if len(buf) - pos < _CENTRAL.size:
            if remaining <= 0:
                break
            chunk = fh.read(min(remaining, _WALK_CHUNK))
            if not chunk:
                break
            remaining -= len(chunk)
            buf, pos = buf[pos:] + chunk, 0
            continue
        sig, name, extra, comment = _CENTRAL.unpack_from(buf, pos)
        if sig != _CENTRAL_SIG:
            break
        count += 1
        pos += _CENTRAL.size + name + extra + comment
    return count


def _check_zip_directory(fh: BinaryIO, limits: ArchiveLimits, what: str) -> None:
    """Refuse a zip whose central directory is too big to be worth parsing, before ``zipfile``
    reads all of it into memory and builds a ZipInfo per entry (a million empty entries, 53 MB,
    cost it 20 s and 450 MB: issue 10)."""
    found = _zip_directory(fh)
    if found is None:
        return
    entries, start, size = found
    if entries > limits.max_members:
        raise DistError(
            f"the {what} has more than {limits.max_members} members: its end of central "
            f"directory record declares {entries}"
        )
    if start < 0:
        raise DistError(
            f"the {what} is not a valid zip archive: its central directory ({size} bytes) "
            "would begin before the file does"
        )
    if size > entries * _CENTRAL_MAX:
        raise DistError(
            f"the {what} is not a valid zip archive: a central directory of {entries} "
            f"entries cannot take {size} bytes"
        )
    real = _count_central_headers(fh, start, size, limits.max_members)
    if real > limits.max_members:
        raise DistError(
            f"the {what} has more than {limits.max_members} members: its central directory "
            f"holds more entries than its end record declares ({entries})"
        )
    fh.seek(0)


def _zip_metadata(fh: BinaryIO, member: str, limits: ArchiveLimits, what: str) -> bytes:
    _check_zip_directory(fh, limits, what)
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


#: Tar header types whose payload tarfile reads into memory in one piece and then follows to the
#: next header by recursion: pax extended and global headers (POSIX.1-2001), Solaris's pax
#: variant, GNU long names and long link names.
_EXTENDED = (
    tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK
)
#: Real extended headers hold a few path names and times: well under a KiB.
MAX_EXTENDED_HEADER = 1024 * 1024
#: A member has a pax global header, a pax header and a GNU long name/link at most in practice;
#: a chain of hundreds made tarfile recurse past Python's limit.
MAX_EXTENDED_CHAIN = 8


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's header reader with limits, checked before a header's payload is read: an
    extended header may not claim more than ``MAX_EXTENDED_HEADER`` bytes (tarfile would read a
    gigabyte of "pax header" into memory), nor chain more than ``MAX_EXTENDED_CHAIN`` deep, and
    GNU sparse members (never in an sdist) are refused rather than their extension blocks read
    into lists."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        # tarfile.TarInfo.fromtarfile (CPython 3.11-3.13), with the checks between its lines.
        assert tarfile_.fileobj is not None
        buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
        obj = cls.frombuf(buf, tarfile_.encoding, tarfile_.errors)
        obj.offset = tarfile_.fileobj.tell() - tarfile.BLOCKSIZE
        if obj.type in _EXTENDED:
            chain = getattr(tarfile_, "_assay_chain", 0) + 1
            if chain > MAX_EXTENDED_CHAIN:
                raise DistError(f"the sdist has a chain of more than {MAX_EXTENDED_CHAIN} extended tar headers")
            if obj.size > MAX_EXTENDED_HEADER:
                raise DistError(
                    f"the sdist has an extended tar header of {obj.size} bytes; the limit is "
                    f"{MAX_EXTENDED_HEADER} bytes"
                )
        else:
            chain = 0
        tarfile_._assay_chain = chain  # type: ignore[attr-defined]
        if obj.type == tarfile.GNUTYPE_SPARSE:
            raise DistError(f"the sdist has a GNU sparse member ({obj.name!r}): sdists hold plain files")
        return obj._proc_member(tarfile_)  # type: ignore[attr-defined,no-any-return]


def _tar_metadata(path: Path, member: str, limits: ArchiveLimits) -> bytes:
    try:
        with path.open("rb") as raw, gzip.GzipFile(fileobj=raw) as gz:
            stream = io.BufferedReader(_Budget(gz, scan_budget(path, limits)))  # type: ignore[arg-type]
            with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as tf:
                count = 0
                while (info := tf.next()) is not None:
                    # tarfile keeps every header it has read in ``members``; walking 200,000
                    # of them would keep 200,000 TarInfo objects alive for nothing.
                    tf.members.clear()  # type: ignore[attr-defined]
                    count += 1
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
