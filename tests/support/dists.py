"""Distributions for tests.

``build_project`` runs a real PEP 517 build (flit_core through ``python -m build``), the way a
publisher makes files. ``make_wheel`` / ``make_sdist`` write archives directly, for the many
files a test needs quickly and for deliberately broken ones.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path

    @property
    def files(self) -> list[Path]:
        return [self.wheel, self.sdist]


def _module(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def write_project(
    workdir: Path,
    name: str,
    version: str,
    *,
    requires_python: str = ">=3.8",
    dependencies: tuple[str, ...] = (),
    description: str = "A test project",
) -> Path:
    """The source tree of a tiny flit_core project (``workdir/src-<name>-<version>``)."""
    src = workdir / f"src-{name}-{version}"
    module = _module(name)
    (src / module).mkdir(parents=True)
    (src / module / "__init__.py").write_text(f'"""{name} for tests."""\n\nVERSION = "{version}"\n')
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["flit_core>=3.9,<5"]
            build-backend = "flit_core.buildapi"

            [project]
            name = "{name}"
            version = "{version}"
            description = "{description}"
            requires-python = "{requires_python}"
            dependencies = [{deps}]

            [tool.flit.module]
            name = "{module}"
            """
        )
    )
    return src


def build_project(
    workdir: Path,
    name: str,
    version: str,
    *,
    requires_python: str = ">=3.8",
    dependencies: tuple[str, ...] = (),
) -> Built:
    """Write a tiny project and build its wheel and sdist with flit_core (no network)."""
    src = write_project(workdir, name, version, requires_python=requires_python, dependencies=dependencies)
    out = workdir / f"dist-{name}-{version}"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(out.glob("*.whl"))
    sdist = next(out.glob("*.tar.gz"))
    return Built(wheel, sdist)


def metadata_text(
    name: str, version: str, *, requires_python: str | None = None, extra: str = ""
) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Summary: test"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    return "\n".join(lines) + "\n" + extra + ("\n" if extra and not extra.endswith("\n") else "")


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    metadata: str | bytes | None = None,
    filename: str | None = None,
    extra_files: dict[str, bytes] | None = None,
    tag: str = "py3-none-any",
    requires_python: str | None = None,
) -> Path:
    """A minimal but valid wheel; ``metadata`` replaces METADATA (text or raw bytes)."""
    dist_name = _module(name)
    dist_info = f"{dist_name}-{version}.dist-info"
    meta = (
        metadata
        if metadata is not None
        else metadata_text(name, version, requires_python=requires_python)
    )
    meta_bytes = meta.encode() if isinstance(meta, str) else meta
    members: dict[str, bytes] = {
        f"{dist_name}/__init__.py": b"",
        **(extra_files or {}),
        f"{dist_info}/METADATA": meta_bytes,
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    record = [_record_line(p, d) for p, d in members.items()] + [f"{dist_info}/RECORD,,"]
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = directory / (filename or f"{dist_name}-{version}-{tag}.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def make_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    pkg_info: str | bytes | None = None,
    filename: str | None = None,
) -> Path:
    base = f"{_module(name)}-{version}"
    info = pkg_info if pkg_info is not None else metadata_text(name, version)
    info_bytes = info.encode() if isinstance(info, str) else info
    path = directory / (filename or f"{base}.tar.gz")
    with tarfile.open(path, "w:gz") as tf:
        for member, data in {
            f"{base}/PKG-INFO": info_bytes,
            f"{base}/pyproject.toml": b"[project]\n",
        }.items():
            ti = tarfile.TarInfo(member)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- deliberately hostile archives (the "Bad input" cases) ----


def _central_records(data: bytes) -> tuple[int, int, int, list[tuple[int, int, bytes]]]:
    """(EOCD offset, central directory offset, size, [(record offset, record length, name)])."""
    import struct

    eocd = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", data[eocd + 12 : eocd + 20])
    records = []
    pos = cd_offset
    while pos < cd_offset + cd_size:
        assert data[pos : pos + 4] == b"PK\x01\x02"
        n, m, k = struct.unpack("<HHH", data[pos + 28 : pos + 34])
        records.append((pos, 46 + n + m + k, data[pos + 46 : pos + 46 + n]))
        pos += 46 + n + m + k
    return eocd, cd_offset, cd_size, records


def wheel_with_declared_metadata_size(directory: Path, name: str, version: str, size: int) -> Path:
    """A valid wheel whose central directory claims METADATA is ``size`` bytes: a bomb's
    signature, refused before anything is decompressed."""
    import struct

    path = make_wheel(directory, name, version)
    data = bytearray(path.read_bytes())
    _eocd, _off, _size, records = _central_records(bytes(data))
    pos = next(p for p, _n, member in records if member.endswith(b"/METADATA"))
    data[pos + 24 : pos + 28] = struct.pack("<I", size)
    path.write_bytes(bytes(data))
    return path


def wheel_with_metadata_bomb(directory: Path, name: str, version: str, expanded: int) -> Path:
    """A wheel whose METADATA honestly inflates to ``expanded`` bytes (little on disk)."""
    body = metadata_text(name, version) + "\n" + "x" * expanded
    return make_wheel(directory, name, version, metadata=body)


def wheel_with_overlapping_members(directory: Path, name: str, version: str) -> Path:
    """A wheel whose central directory has a second entry pointing at METADATA's local header:
    the overlap that "non-recursive" zip bombs use to expand one stream many times."""
    import struct

    path = make_wheel(directory, name, version)
    data = path.read_bytes()
    eocd, cd_offset, cd_size, records = _central_records(data)
    pos, length, member = next(r for r in records if r[2].endswith(b"/METADATA"))
    record = bytearray(data[pos : pos + length])
    clone_name = member[:-8] + b"METADATX"  # same length, another name, same local header
    record[46 : 46 + len(member)] = clone_name
    entries = struct.unpack("<H", data[eocd + 10 : eocd + 12])[0] + 1
    tail = bytearray(data[eocd:])
    tail[8:10] = struct.pack("<H", entries)
    tail[10:12] = struct.pack("<H", entries)
    tail[12:16] = struct.pack("<I", cd_size + len(record))
    path.write_bytes(data[: cd_offset + cd_size] + bytes(record) + bytes(tail))
    return path


_ZEROS_MEMBER: bytes | None = None


def sdist_gzip_bomb(directory: Path, name: str, version: str, zeros_gib: float = 1.0625) -> Path:
    """A .tar.gz (about 1 MiB) whose first member is ``zeros_gib`` GiB of zeros, with a valid
    PKG-INFO only after it: a decompression bomb in front of the metadata. Built from one
    compressed 64 MiB gzip member repeated (a gzip stream may be several members)."""
    import gzip

    global _ZEROS_MEMBER
    chunk = 64 << 20
    if _ZEROS_MEMBER is None:
        _ZEROS_MEMBER = gzip.compress(b"\0" * chunk, compresslevel=9)
    count = max(1, round(zeros_gib * 16))
    base = f"{_module(name)}-{version}"
    zeros = tarfile.TarInfo(f"{base}/zeros.bin")
    zeros.size = count * chunk
    info = metadata_text(name, version).encode()
    pkg = tarfile.TarInfo(f"{base}/PKG-INFO")
    pkg.size = len(info)
    pad = b"\0" * (-len(info) % 512)
    path = directory / f"{base}.tar.gz"
    path.write_bytes(
        gzip.compress(zeros.tobuf(format=tarfile.PAX_FORMAT))
        + _ZEROS_MEMBER * count
        + gzip.compress(pkg.tobuf(format=tarfile.PAX_FORMAT) + info + pad + b"\0" * 1024)
    )
    return path


def wheel_with_many_entries(
    directory: Path, name: str, version: str, entries: int, *, declared: int | None = None
) -> Path:
    """A valid wheel followed, in its central directory, by ``entries`` empty entries (53 bytes
    each, all naming the first local header), with a zip64 end record (APPNOTE.TXT 4.3.14-4.3.16)
    that declares ``declared`` entries (default: the truth). A million entries make a 53 MB
    file whose central directory costs ``zipfile`` seconds and hundreds of MB to parse: the
    "central-directory bomb" of issue 10. Written with ``struct``, about a second per million."""
    import struct

    path = make_wheel(directory, name, version)
    data = path.read_bytes()
    _eocd, cd_offset, cd_size, records = _central_records(data)
    # A central file header (APPNOTE 4.3.12): stored, sizes 0, a 7-byte name, no extra field.
    head = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0)
    dummies = b"".join([head + b"%07x" % i for i in range(entries)])
    cd = data[cd_offset : cd_offset + cd_size] + dummies
    total = len(records) + entries
    count = total if declared is None else declared
    zip64_offset = cd_offset + len(cd)
    tail = (
        # zip64 end of central directory record (4.3.14): 44 bytes follow the size field.
        struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(cd), cd_offset)
        # zip64 end of central directory locator (4.3.15).
        + struct.pack("<IIQI", 0x07064B50, 0, zip64_offset, 1)
        # end of central directory record (4.3.16), every field saying "see the zip64 record".
        + struct.pack("<IHHHHIIH", 0x06054B50, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    )
    path.write_bytes(data[:cd_offset] + cd + tail)
    return path


def sdist_with_many_members(
    directory: Path, name: str, version: str, members: int, *, padding: int = 0
) -> Path:
    """A .tar.gz with ``members`` empty files (after ``padding`` random bytes in a file of their
    own) before its PKG-INFO: flit and hatchling write PKG-INFO last, so the whole archive is
    walked. Empty headers differ in a few bytes, so gzip packs them into about 7 bytes each; the
    padding makes the file big enough that the decompression budget (32 times the upload) lets
    all of them through. Headers are stamped from one template (ustar, POSIX.1-1988): name and
    checksum patched in, a million a second."""
    import gzip
    import os

    base = f"{_module(name)}-{version}"
    blocks = bytearray()
    if padding:
        pad = tarfile.TarInfo(f"{base}/padding.bin")
        pad.size = padding
        blocks += pad.tobuf(format=tarfile.USTAR_FORMAT) + os.urandom(padding) + b"\0" * (-padding % 512)
    template = tarfile.TarInfo(f"{base}/f0000000").tobuf(format=tarfile.USTAR_FORMAT)
    middle, rest = template[100:148], template[156:512]
    fixed = sum(middle) + sum(rest) + 8 * 32  # the checksum field counts as 8 spaces
    for i in range(members):
        member = f"{base}/f{i:07d}".encode()
        blocks += member.ljust(100, b"\0") + middle + b"%06o\0 " % (fixed + sum(member)) + rest
    info = metadata_text(name, version).encode()
    pkg = tarfile.TarInfo(f"{base}/PKG-INFO")
    pkg.size = len(info)
    blocks += pkg.tobuf(format=tarfile.USTAR_FORMAT) + info + b"\0" * (-len(info) % 512) + b"\0" * 1024
    path = directory / f"{base}.tar.gz"
    path.write_bytes(gzip.compress(bytes(blocks), compresslevel=6))
    return path


def sdist_with_headers(directory: Path, name: str, version: str, headers: list[tuple[bytes, int]]) -> Path:
    """A .tar.gz whose PKG-INFO comes after the raw headers ``headers``: (type flag, declared
    size) each, with that many zero bytes of payload only when the size is small (a header
    claiming a gigabyte is refused before its payload is read, or should be)."""
    import gzip

    base = f"{_module(name)}-{version}"
    blocks = bytearray()
    for i, (kind, size) in enumerate(headers):
        ti = tarfile.TarInfo(f"{base}/h{i}")
        ti.type = kind
        ti.size = size
        blocks += ti.tobuf(format=tarfile.GNU_FORMAT)
        if size <= 1 << 20:
            payload = b"1 x\n" if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE) and size == 4 else b"\0" * size
            blocks += payload + b"\0" * (-size % 512)
    info = metadata_text(name, version).encode()
    pkg = tarfile.TarInfo(f"{base}/PKG-INFO")
    pkg.size = len(info)
    blocks += pkg.tobuf(format=tarfile.USTAR_FORMAT) + info + b"\0" * (-len(info) % 512) + b"\0" * 1024
    path = directory / f"{base}.tar.gz"
    path.write_bytes(gzip.compress(bytes(blocks)))
    return path
