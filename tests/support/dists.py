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


def build_project(
    workdir: Path,
    name: str,
    version: str,
    *,
    requires_python: str = ">=3.8",
    dependencies: tuple[str, ...] = (),
) -> Built:
    """Write a tiny project and build its wheel and sdist with flit_core (no network)."""
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
            description = "A test project"
            requires-python = "{requires_python}"
            dependencies = [{deps}]

            [tool.flit.module]
            name = "{module}"
            """
        )
    )
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
