"""Generate the benchmark's distributions: N projects x 5 versions x (wheel + sdist).

Small but valid files: a wheel with ``<name>/__init__.py``, ``.dist-info/METADATA``, ``WHEEL``
and ``RECORD``; an sdist ``.tar.gz`` with ``PKG-INFO``, ``pyproject.toml`` and the module.
Everything is deterministic (fixed timestamps), so the same command gives the same bytes and
the same sha256 on every machine. All files land in one flat directory (what pypiserver serves).

Usage: python gen.py OUT_DIR [--projects 10000]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import multiprocessing
import os
import sys
import tarfile
import time
import zipfile
from pathlib import Path

VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.0.1")
EPOCH = (2024, 1, 1, 0, 0, 0)
MTIME = 1704067200


def project_name(i: int) -> str:
    """Display name of project ``i`` (normalized form: ``bench-pkg-00042``)."""
    return f"bench-pkg-{i:05d}"


def dist_name(i: int) -> str:
    # Wheel / sdist filename form of the name (PEP 427 / 625: '-' -> '_').
    return project_name(i).replace("-", "_")


def metadata(i: int, version: str) -> bytes:
    return (
        "Metadata-Version: 2.1\n"
        f"Name: {project_name(i)}\n"
        f"Version: {version}\n"
        f"Summary: Benchmark project number {i}\n"
        "Requires-Python: >=3.8\n"
        "License: MIT\n"
        "\n"
        f"A small generated project for the index benchmark ({i}, {version}).\n"
    ).encode()


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def wheel_bytes(i: int, version: str) -> tuple[str, bytes]:
    dn = dist_name(i)
    info = f"{dn}-{version}.dist-info"
    members = [
        (f"{dn}/__init__.py", f'__version__ = "{version}"\n'.encode()),
        (f"{info}/METADATA", metadata(i, version)),
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: assay-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
    ]
    record = "\n".join([*(_record_line(p, d) for p, d in members), f"{info}/RECORD,,"]) + "\n"
    members.append((f"{info}/RECORD", record.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in members:
            zi = zipfile.ZipInfo(path, EPOCH)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data)
    return f"{dn}-{version}-py3-none-any.whl", buf.getvalue()


def sdist_bytes(i: int, version: str) -> tuple[str, bytes]:
    dn = dist_name(i)
    base = f"{dn}-{version}"
    members = [
        (f"{base}/PKG-INFO", metadata(i, version)),
        (
            f"{base}/pyproject.toml",
            (
                '[build-system]\nrequires = ["flit_core>=3.9"]\nbuild-backend = "flit_core.buildapi"\n\n'
                f'[project]\nname = "{project_name(i)}"\nversion = "{version}"\n'
                'description = "bench"\n'
            ).encode(),
        ),
        (f"{base}/{dn}/__init__.py", f'__version__ = "{version}"\n'.encode()),
    ]
    raw = io.BytesIO()
    # mtime=0 in the gzip header: identical bytes on every run.
    with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=6) as tf:
        for path, data in members:
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            ti.mtime = MTIME
            ti.mode = 0o644
            ti.uname = ti.gname = "bench"
            tf.addfile(ti, io.BytesIO(data))
    return f"{base}.tar.gz", _fixed_gzip(raw.getvalue())


def _fixed_gzip(data: bytes) -> bytes:
    # tarfile writes the current time into the gzip header; zero it (bytes 4..8).
    return data[:4] + b"\x00\x00\x00\x00" + data[8:]


def files_for(i: int) -> list[tuple[str, bytes]]:
    out = []
    for v in VERSIONS:
        out.append(wheel_bytes(i, v))
        out.append(sdist_bytes(i, v))
    return out


def _write_range(args: tuple[Path, int, int]) -> int:
    out, start, stop = args
    n = 0
    for i in range(start, stop):
        for name, data in files_for(i):
            path = out / name
            tmp = out / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, path)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--projects", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # The marker sits beside the directory: pypiserver would list any file inside it.
    marker = args.out.parent / f"{args.out.name}.complete-{args.projects}"
    if marker.exists():
        print(f"gen: {args.out} already holds {args.projects * 10} files", file=sys.stderr)
        return
    t0 = time.monotonic()
    step = 250
    chunks = [(args.out, s, min(s + step, args.projects)) for s in range(0, args.projects, step)]
    with multiprocessing.Pool(args.jobs) as pool:
        total = sum(pool.imap_unordered(_write_range, chunks))
    seconds = time.monotonic() - t0
    marker.write_text(json.dumps({"files": total, "seconds": round(seconds, 1)}) + "\n")
    print(f"gen: wrote {total} files in {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
