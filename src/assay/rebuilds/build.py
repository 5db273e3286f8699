"""Rebuilding a wheel from an sdist as the rebuilder's side of ``assay rebuild`` does it:
pypa/build in a subprocess (its isolated environment, or the caller's with ``no_isolation``),
``SOURCE_DATE_EPOCH`` taken from the sdist itself.

``SOURCE_DATE_EPOCH`` (reproducible-builds.org's specification; flit_core, hatchling and
setuptools' wheel writer read it for the zip entries' times): the newest mtime among the
sdist's members. Sdist builders stamp the members with the epoch they were given (flit_core
stamps the sources and leaves its generated ``PKG-INFO`` at 0, hatchling stamps all), so the
newest member's time is that epoch; an sdist built without it still names one fixed time.

Isolation: pypa/build creates a fresh virtual environment and installs the sdist's
``build-system.requires`` into it with pip; ``index_url`` becomes that pip's ``PIP_INDEX_URL``
(an index that hosts the build backends, such as this index itself), else pip's own
configuration applies. ``no_isolation`` builds in the caller's environment, prepared by it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path


class BuildFailed(Exception):
    """The sdist could not be read or built; the message says why (with build's output)."""


@dataclass(frozen=True, slots=True)
class Built:
    path: Path
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_date_epoch(sdist: Path) -> int:
    """The sdist's own time: the newest mtime among its members."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            members = tar.getmembers()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BuildFailed(f"{sdist.name} is not a readable .tar.gz: {exc}") from None
    if not members:
        raise BuildFailed(f"{sdist.name} is empty")
    return int(max(m.mtime for m in members))


def unpack(sdist: Path, into: Path) -> Path:
    """Extract the sdist (tarfile's ``data`` filter: no absolute paths, links out of the tree
    or device files, PEP 706) and return its single top-level directory."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            tar.extractall(into, filter="data")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BuildFailed(f"cannot extract {sdist.name}: {exc}") from None
    tops = [p for p in into.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise BuildFailed(f"{sdist.name} does not hold one top-level directory (PyPA source distribution format)")
    return tops[0]


def build_wheels(
    sdist: Path,
    workdir: Path,
    *,
    epoch: int,
    no_isolation: bool = False,
    index_url: str | None = None,
    timeout: float = 600,
) -> list[Built]:
    source = unpack(sdist, workdir / "src")
    out = workdir / "dist"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    if index_url:
        env["PIP_INDEX_URL"] = index_url
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)]
    if no_isolation:
        command.insert(4, "--no-isolation")
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"building {sdist.name} took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BuildFailed(f"building a wheel from {sdist.name} failed (exit {done.returncode}):\n{tail}")
    wheels = sorted(out.glob("*.whl"))
    if not wheels:
        raise BuildFailed(f"building {sdist.name} made no wheel")
    return [Built(w, sha256_of(w)) for w in wheels]
