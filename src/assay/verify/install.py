"""``assay install``: install exactly the files that were verified, nothing resolved again.

The gap this closes: a tool that checks provenance and then runs ``pip install -r ...`` (or
``pip install pkg``) lets pip resolve again, from whatever the index serves at that moment, so
what is installed need not be what was checked. Here the order is:

1. choose what to install from the lock (PEP 751 selection, ``Pylock.select``: markers, and
   the best wheel for this interpreter by ``packaging.tags``, the sdist only when no wheel
   fits);
2. verify every file of those packages (not only the chosen one; an attacker gets no say in
   which file a machine picks);
3. download each chosen file into a private directory (mode 0700), hashing while it streams,
   and stop at the first byte count or sha256 that differs from the lock;
4. run the target environment's pip (``assay.verify.interpreters``: ``--python``, else the
   active virtual environment, else ``python3`` on PATH; never assay's own) on exactly those
   files: ``--no-index --find-links DIR --no-deps --require-hashes`` with one
   ``name==version --hash=sha256:...`` line per file. pip cannot reach an index, cannot add a
   dependency, finds nothing in DIR but the checked files, and checks every hash again itself.

Requirements name the package, not the file (``name @ file:///tmp/...``): for a direct
reference pip records PEP 610's ``direct_url.json`` with that URL, and ``pip freeze`` then
prints ``name @ file:///tmp/assay-install-.../...`` for a directory deleted a moment later.
A package found through ``--find-links`` is recorded like one from an index, and ``pip freeze``
prints ``name==version``. Only a direct archive whose file name gives no version (PEP 751
``packages.archive``, e.g. ``main.zip``) is still passed by path: pip cannot match it by name.

If anything fails before step 4, nothing is installed.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.pylock import (
    PackageArchive,
    PackageDirectory,
    PackageSdist,
    PackageVcs,
    PackageWheel,
    Pylock,
    PylockSelectError,
)
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from assay.verify.errors import FetchError, InputError
from assay.verify.files import LockedFile
from assay.verify.indexes import redact
from assay.verify.locks import package_files

if TYPE_CHECKING:
    from assay.verify.fetch import Http

#: Cap for a download whose size the lock does not record.
MAX_DOWNLOAD = 4 << 30  # 4 GiB


class InstallError(Exception):
    """A file could not be fetched as locked; nothing was installed."""


@dataclass(frozen=True)
class Plan:
    #: Every file of every package that would be installed: what gets verified.
    to_verify: list[LockedFile]
    #: The one file per package that gets installed.
    to_install: list[LockedFile]


def plan(lock: Pylock, *, source: str) -> Plan:
    try:
        selection = list(lock.select())
    except PylockSelectError as exc:
        raise InputError(f"{source}: nothing can be installed for this interpreter: {exc}") from None
    to_verify: list[LockedFile] = []
    to_install: list[LockedFile] = []
    for package, dist in selection:
        if isinstance(dist, PackageVcs | PackageDirectory):
            kind = "vcs" if isinstance(dist, PackageVcs) else "directory"
            raise InputError(
                f"{source}: {package.name} comes from a {kind} source, which has no hash to check; "
                "assay install installs only locked files (wheels, sdists, archives)"
            )
        files = package_files(package, source=source)
        to_verify += files
        wanted = _filename(dist)
        chosen = next((f for f in files if f.filename == wanted), None)
        assert chosen is not None, "the selected file is one of the package's files"
        to_install.append(chosen)
    return Plan(to_verify=to_verify, to_install=to_install)


def _filename(dist: PackageWheel | PackageSdist | PackageArchive) -> str:
    if isinstance(dist, PackageArchive):
        return (dist.url or dist.path or "").rstrip("/").rsplit("/", 1)[-1]
    return dist.filename


class _Writer:
    """Writes a download to disk, hashing and counting as it goes."""

    def __init__(self, path: Path) -> None:
        self.handle = path.open("wb")
        self.digest = hashlib.sha256()
        self.size = 0

    def __call__(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)


def _fetch_one(file: LockedFile, directory: Path, http: Http | None, lock_dir: Path) -> Path:
    assert file.filename is not None
    assert file.sha256 is not None
    target = directory / file.filename
    limit = file.size if file.size is not None else MAX_DOWNLOAD
    writers: list[_Writer] = []

    def fresh() -> _Writer:
        for old in writers:
            old.handle.close()
        writers.append(_Writer(target))
        return writers[-1]

    try:
        if file.path:
            source = Path(file.path)
            source = source if source.is_absolute() else lock_dir / source
            writer = fresh()
            try:
                with source.open("rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        writer(chunk)
                        if writer.size > limit:
                            break
            except OSError as exc:
                raise InstallError(f"{file.filename}: cannot read {source}: {exc.strerror or exc}") from None
        elif file.url:
            if http is None:
                raise InstallError(f"{file.filename}: --offline, and the lock has only a URL for it")
            try:
                http.download(file.url, fresh, limit=limit)
            except FetchError as exc:
                raise InstallError(f"{file.filename}: download failed: {exc}") from None
        else:
            raise InstallError(f"{file.filename}: the lock gives neither a url nor a path for it")
    finally:
        for writer in writers:
            writer.handle.close()
    writer = writers[-1]
    if file.size is not None and writer.size != file.size:
        raise InstallError(
            f"{file.filename}: got {writer.size} bytes, the lock says {file.size}; nothing was installed"
        )
    if writer.digest.hexdigest() != file.sha256:
        where = redact(file.url) if file.url and not file.path else file.path
        raise InstallError(
            f"{file.filename}: the file at {where} has sha256 {writer.digest.hexdigest()}, "
            f"the lock pins {file.sha256}; nothing was installed"
        )
    return target


def fetch_files(
    files: Sequence[LockedFile], directory: Path, http: Http | None, *, lock_dir: Path, jobs: int
) -> list[Path]:
    """Download (or copy) ``files`` into ``directory``, each checked against the lock."""
    with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="assay-install-fetch") as pool:
        futures = [pool.submit(_fetch_one, f, directory, http, lock_dir) for f in files]
        return [future.result() for future in futures]


def _file_version(filename: str) -> str | None:
    """The version in a wheel or sdist file name (their file name specifications), which is
    what pip matches ``name==version`` against in a ``--find-links`` directory."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def requirements_for(files: Sequence[LockedFile], paths: Sequence[Path]) -> str:
    """pip requirement lines pinning each local file by name, version and sha256 (by path only
    when its name gives no version)."""
    lines = []
    for file, path in zip(files, paths, strict=True):
        version = _file_version(path.name)
        if version is not None:
            lines.append(f"{file.name}=={version} --hash=sha256:{file.sha256}")
        else:
            lines.append(f"{file.name} @ {path.resolve().as_uri()} --hash=sha256:{file.sha256}")
    return "\n".join(lines) + "\n"


def pip_install(python: str, directory: Path, requirements: Path, installer_args: Sequence[str]) -> int:
    """Run the pip of ``python`` on exactly the files in ``directory``; returns its exit code."""
    cmd = [
        python,
        "-m",
        "pip",
        "install",
        "--no-index",
        "--find-links",
        str(directory),
        "--no-deps",
        "--require-hashes",
        "-r",
        str(requirements),
        *installer_args,
    ]
    try:
        return subprocess.run(cmd, check=False).returncode
    except OSError as exc:
        raise InstallError(f"cannot run {python}: {exc}") from None


#: pip install options that put packages somewhere other than the environment's prefix.
_REDIRECTS = ("-t", "--target", "--prefix", "--root")


def redirected_to(installer_args: Sequence[str]) -> str | None:
    """Where pip options after ``--`` send the packages instead (for the message), if they do."""
    for i, arg in enumerate(installer_args):
        if arg == "--user":
            return "the user site (--user)"
        option, equals, value = arg.partition("=")
        if equals and option in _REDIRECTS:
            return f"{value} ({option})"
        if arg in _REDIRECTS and i + 1 < len(installer_args):
            return f"{installer_args[i + 1]} ({arg})"
    return None
