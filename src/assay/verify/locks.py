"""PEP 751 locks (``pylock.toml``), ``pip lock`` output and explicit files, as files to verify.

Read and written with ``packaging.pylock`` only, so what counts as a valid lock is what
packaging's implementation of PEP 751 says.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w
from packaging.pylock import (
    Package,
    PackageArchive,
    PackageSdist,
    PackageWheel,
    Pylock,
    PylockValidationError,
)
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from assay.verify.errors import InputError, read_input
from assay.verify.files import LockedFile, sha256_of
from assay.verify.pins import write_atomically


def parse_pylock(text: str, *, source: str) -> Pylock:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source} is not TOML: {exc}") from None
    try:
        return Pylock.from_dict(data)
    except PylockValidationError as exc:
        raise InputError(f"{source} is not a valid PEP 751 lock file: {exc}") from None


def load_pylock(path: Path) -> Pylock:
    return parse_pylock(read_input(path), source=str(path))


def _distribution(
    package: Package,
    dist: PackageWheel | PackageSdist | PackageArchive,
    *,
    filename: str,
    source: str,
    not_on_index: str | None = None,
) -> LockedFile:
    where = f"{source}: package {package.name!r}, {filename}"
    return LockedFile(
        name=package.name,
        version=str(package.version) if package.version is not None else None,
        filename=filename,
        sha256=sha256_of(dict(dist.hashes), where=where),
        index=package.index,
        url=dist.url,
        path=dist.path,
        size=dist.size,
        not_on_index=not_on_index,
    )


def package_files(package: Package, *, source: str) -> list[LockedFile]:
    """Every file a package entry lists: all its wheels and its sdist (PEP 751 ``wheels``,
    ``sdist``), or its direct ``archive``. ``vcs`` and ``directory`` sources are not files;
    they are kept (with no sha256) so that a pinned package from one is noticed."""
    files: list[LockedFile] = []
    try:
        for wheel in package.wheels or ():
            files.append(_distribution(package, wheel, filename=wheel.filename, source=source))
        if package.sdist is not None:
            files.append(_distribution(package, package.sdist, filename=package.sdist.filename, source=source))
    except PylockValidationError as exc:  # a file with neither name, path nor url
        raise InputError(f"{source}: package {package.name!r}: {exc}") from None
    if package.archive is not None:
        archive = package.archive
        name = (archive.url or archive.path or "").rstrip("/").rsplit("/", 1)[-1] or str(package.name)
        files.append(
            _distribution(
                package,
                archive,
                filename=name,
                source=source,
                not_on_index="a direct URL archive, not a file from an index",
            )
        )
    for kind, entry in (("vcs", package.vcs), ("directory", package.directory)):
        if entry is not None:
            files.append(
                LockedFile(
                    name=package.name,
                    version=str(package.version) if package.version is not None else None,
                    filename=None,
                    sha256=None,
                    index=None,
                    not_on_index=f"a {kind} source, not a file from an index",
                )
            )
    return files


def lock_files(lock: Pylock, *, source: str, packages: Iterable[Package] | None = None) -> list[LockedFile]:
    chosen = lock.packages if packages is None else packages
    return [f for package in chosen for f in package_files(package, source=source)]


def run_pip_lock(pip_args: Sequence[str]) -> Pylock:
    """``python -m pip lock -o - ARGS`` with the running interpreter, as ``pypi-verify-now``
    does; its stdout is the lock. ``--quiet`` keeps pip's progress off stdout."""
    cmd = [sys.executable, "-m", "pip", "lock", "--quiet", "--output", "-", *pip_args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise InputError(f"could not run pip lock: {exc}") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip() or "no output"
        raise InputError(f"pip lock failed (exit {proc.returncode}):\n{detail}")
    return parse_pylock(proc.stdout, source="the output of pip lock")


def explicit_files(paths: Sequence[Path]) -> list[LockedFile]:
    """Local distribution files; their sha256 is computed here, their project and version come
    from the file name (the wheel and sdist file name specifications)."""
    files: list[LockedFile] = []
    for path in paths:
        filename = path.name
        try:
            if filename.endswith(".whl"):
                name, version, _build, _tags = parse_wheel_filename(filename)
            else:
                name, version = parse_sdist_filename(filename)
        except (InvalidWheelFilename, InvalidSdistFilename) as exc:
            raise InputError(f"{path}: not a wheel or sdist file name ({exc})") from None
        try:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        files.append(
            LockedFile(
                name=canonicalize_name(name),
                version=str(version),
                filename=filename,
                sha256=digest.hexdigest(),
                index=None,
                path=str(path),
                size=path.stat().st_size,
            )
        )
    return files


def write_lock_identities(path: Path, identities: Mapping[NormalizedName, Sequence[Mapping[str, Any]]]) -> int:
    """Record ``identities`` (package name -> PEP 740 publisher blocks) as the packages'
    PEP 751 ``attestation-identities`` and rewrite the lock. Returns how many packages changed.

    The lock is re-serialized by ``packaging.pylock`` (``Pylock.to_dict``): values are kept,
    TOML comments and key order are not, as with any tool that writes locks.
    """
    lock = load_pylock(path)
    changed = 0
    packages: list[Package] = []
    for package in lock.packages:
        new = identities.get(package.name)
        if new is not None:
            entries = [{k: v for k, v in block.items() if v is not None} for block in new]
            if list(package.attestation_identities or []) != entries:
                package = dataclasses.replace(package, attestation_identities=entries)
                changed += 1
        packages.append(package)
    if changed:
        updated = dataclasses.replace(lock, packages=packages)
        updated.validate()
        write_atomically(path, tomli_w.dumps(updated.to_dict()))
    return changed
