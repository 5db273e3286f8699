"""Fixtures for the consumer client: a static PEP 740 index on 127.0.0.1, a local Sigstore, and
``World``, which publishes attested distributions, writes locks and pins, and runs the CLI."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner, Result
from packaging.pylock import Package, PackageSdist, PackageWheel, Pylock
from packaging.utils import canonicalize_name
from packaging.version import Version

from assay.cli import main
from assay.publishers import GitHub, Identity
from tests.conftest import FIXTURES
from tests.support.dists import make_sdist, make_wheel
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.static_index import URL, StaticIndex, provenance_document

_names = itertools.count()


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> LocalSigstore:
    return LocalSigstore(tmp_path_factory.mktemp("sigstore"))


@pytest.fixture(scope="module")
def index() -> Iterator[StaticIndex]:
    with StaticIndex() as server:
        yield server


def github(repository: str, workflow: str = "release.yml", **kw: Any) -> tuple[CertIdentity, Identity]:
    """A GitHub Actions signer (as Fulcio certifies it) and its publisher identity."""
    return CertIdentity.github(repository, workflow, **kw), GitHub(repository, workflow)


@dataclass(frozen=True)
class Published:
    project: str
    version: str
    filename: str
    sha256: str
    path: Path
    url: str


@dataclass
class Run:
    result: Result

    @property
    def code(self) -> int:
        return self.result.exit_code

    @property
    def doc(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.result.stdout)
        return data

    @property
    def verdicts(self) -> dict[str, str]:
        return {f["filename"]: f["verdict"] for f in self.doc["files"]}

    def file(self, filename: str) -> dict[str, Any]:
        return next(f for f in self.doc["files"] if f["filename"] == filename)

    @property
    def text(self) -> str:
        return self.result.output


class World:
    """One test's view: its own directory, cache, pins, and unique project names."""

    def __init__(self, tmp: Path, index: StaticIndex, authority: LocalSigstore) -> None:
        self.tmp = tmp
        self.index = index
        self.authority = authority
        self.dists = tmp / "dists"
        self.dists.mkdir()
        self.cache = tmp / "cache"
        self.pins_path = tmp / ".provenance.toml"

    def name(self, stem: str = "widget") -> str:
        return f"{stem}-{next(_names)}"

    # -- publishing -----------------------------------------------------------------------

    def attest(self, filename: str, sha256: str, signer: CertIdentity, publisher: Identity) -> bytes:
        attestation = self.authority.attest(filename, sha256, signer)
        return provenance_document([(publisher.to_publisher(), [attestation.model_dump(mode="json")])])

    def publish(
        self,
        project: str,
        version: str = "1.0",
        signer: tuple[CertIdentity, Identity] | None = None,
        *,
        kinds: Sequence[str] = ("wheel", "sdist"),
        mode: str = URL,
    ) -> list[Published]:
        """Build the project's files, publish them on the index (attested by ``signer``)."""
        files = []
        for kind in kinds:
            if kind == "wheel":
                path = make_wheel(self.dists, project, version)
            else:
                path = make_sdist(self.dists, project, version)
            content = path.read_bytes()
            sha = self.index.publish(project, version, path.name, content, mode=mode).sha256
            if signer is not None:
                self.index.set_provenance(path.name, self.attest(path.name, sha, *signer))
            files.append(
                Published(canonicalize_name(project), version, path.name, sha, path, self.index.file_url(path.name))
            )
        return files

    # -- inputs ---------------------------------------------------------------------------

    def lock(self, *groups: list[Published], path: Path | None = None, index: str | None = None) -> Path:
        """A PEP 751 lock listing the files (one package per project), via packaging.pylock."""
        packages: dict[str, list[Published]] = {}
        for group in groups:
            for f in group:
                packages.setdefault(f.project, []).append(f)
        entries = []
        for project, files in sorted(packages.items()):
            wheels = [
                PackageWheel(name=f.filename, url=f.url, size=f.path.stat().st_size, hashes={"sha256": f.sha256})
                for f in files
                if f.filename.endswith(".whl")
            ]
            sdists = [
                PackageSdist(name=f.filename, url=f.url, size=f.path.stat().st_size, hashes={"sha256": f.sha256})
                for f in files
                if not f.filename.endswith(".whl")
            ]
            entries.append(
                Package(
                    name=canonicalize_name(project),
                    version=Version(files[0].version),
                    index=index or self.index.simple,
                    wheels=wheels or None,
                    sdist=sdists[0] if sdists else None,
                )
            )
        lock = Pylock(lock_version=Version("1.0"), created_by="tests", packages=entries)
        lock.validate()
        target = path or self.tmp / "pylock.toml"
        target.write_text(tomli_w.dumps(lock.to_dict()))
        return target

    def pin(self, **tables: dict[str, str]) -> None:
        """Write .provenance.toml with one table per package."""
        self.pins_path.write_text(tomli_w.dumps({"packages": tables}))

    # -- running --------------------------------------------------------------------------

    def env(self) -> dict[str, str | None]:
        """No pip configuration of this machine; the cache and the memo's key inside the test's
        tmp; the tests' own environment active (what ``assay install`` installs into, unless a
        test activates another)."""
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("PIP_", "UV_"))}
        env.update(
            {
                "PIP_CONFIG_FILE": os.devnull,
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1",
                "XDG_CACHE_HOME": str(self.tmp / "xdg-cache"),
                "XDG_STATE_HOME": str(self.tmp / "xdg-state"),
                "COLUMNS": "250",  # the table on one line per file, whatever runs the tests
                "VIRTUAL_ENV": sys.prefix,
            }
        )
        return env

    def run(self, command: str, *rest: str, trust: str | None = "local", json_output: bool = True) -> Run:
        """``assay <command> <our options> <rest>``; ``command`` may be two words (``pins diff``)."""
        options = ["--pins", str(self.pins_path), "--cache-dir", str(self.cache)]
        if trust == "local":
            options += ["--trust-root", str(self.authority.trusted_root_path)]
        elif trust == "staging":
            options += ["--staging"]
        if json_output:
            options += ["--format", "json"]
        result = CliRunner().invoke(main, [*command.split(), *options, *rest], env=self.env())
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result)

    def verify(self, *args: str, **kw: Any) -> Run:
        return self.run("verify", *args, **kw)


@pytest.fixture
def world(tmp_path: Path, index: StaticIndex, authority: LocalSigstore) -> World:
    return World(tmp_path, index, authority)


@pytest.fixture
def fixture_copy(tmp_path: Path) -> Path:
    """A private copy of shared/fixtures/pep740 (never edit the originals)."""
    target = tmp_path / "pep740"
    shutil.copytree(FIXTURES, target)
    return target
