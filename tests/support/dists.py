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


def metadata_text(name: str, version: str, *, requires_python: str | None = None, extra: str = "") -> str:
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
    meta = metadata if metadata is not None else metadata_text(name, version, requires_python=requires_python)
    meta_bytes = meta.encode() if isinstance(meta, str) else meta
    members: dict[str, bytes] = {
        f"{dist_name}/__init__.py": b"",
        **(extra_files or {}),
        f"{dist_info}/METADATA": meta_bytes,
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
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
