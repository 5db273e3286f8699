"""Fixtures for the mirror engine: its own database (SQLite and PostgreSQL) and blob store, a
local Sigstore, a static PEP 740 index and a real ``assay serve`` as upstreams, an injectable
clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from packaging.utils import canonicalize_name

from assay.mirror.policy import Policy, parse_policy
from assay.mirror.service import MirrorService
from assay.publishers import GitHub, Identity
from assay.storage.blobs import FilesystemBlobStore
from assay.storage.db import Database
from tests.support.dists import make_sdist, make_wheel
from tests.support.postgres import fresh_database
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.static_index import URL, StaticIndex, provenance_document

T = TypeVar("T")
_names = itertools.count()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> LocalSigstore:
    return LocalSigstore(tmp_path_factory.mktemp("sigstore"))


@pytest.fixture(scope="module")
def static() -> Iterator[StaticIndex]:
    with StaticIndex() as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """The mirror's own database (the index that mirrors), migrated to head."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path_factory.mktemp('mirror-db') / 'assay.db'}")
        db.migrate()
        yield db
        db.dispose()
    else:
        with fresh_database() as url:
            db = Database(url)
            db.migrate()
            yield db
            db.dispose()


@pytest.fixture(scope="module")
def blobs(engine_db: Database, tmp_path_factory: pytest.TempPathFactory) -> FilesystemBlobStore:
    """The blob store beside ``engine_db``: one per database, as on a server."""
    return FilesystemBlobStore(tmp_path_factory.mktemp("mirror-blobs"))


def github(repository: str) -> tuple[CertIdentity, Identity]:
    return CertIdentity.github(repository, "release.yml"), GitHub(repository, "release.yml")


@dataclass
class Mirror:
    """One test's view: a clock, a service factory, helpers to publish attested files."""

    db: Database
    blobs: FilesystemBlobStore
    static: StaticIndex
    authority: LocalSigstore
    tmp: Path
    clock: Clock

    def name(self, stem: str = "mirrored") -> str:
        return f"{stem}-{next(_names)}"

    def service(self, **kw: Any) -> MirrorService:
        options: dict[str, Any] = {"page_ttl": 60, "max_file_size": 10 * 1024 * 1024, "clock": self.clock}
        options.update(kw)
        return MirrorService(self.db, self.blobs, trust_root=str(self.authority.trusted_root_path), **options)

    def publish(
        self,
        project: str,
        version: str,
        signer: tuple[CertIdentity, Identity] | None = None,
        *,
        kinds: tuple[str, ...] = ("wheel",),
        mode: str = URL,
    ) -> list[str]:
        names = []
        for kind in kinds:
            path = (make_wheel if kind == "wheel" else make_sdist)(self.tmp, project, version)
            entry = self.static.publish(project, version, path.name, path.read_bytes(), mode=mode)
            if signer is not None:
                attestation = self.authority.attest(path.name, entry.sha256, signer[0])
                self.static.set_provenance(
                    path.name,
                    provenance_document([(signer[1].to_publisher(), [attestation.model_dump(mode="json")])]),
                )
            names.append(path.name)
        return names

    def policy(self, text: str, pins: dict[str, dict[str, str]] | None = None) -> Policy:
        pins_text = None
        if pins is not None:
            import tomli_w

            pins_text = tomli_w.dumps({"packages": {canonicalize_name(k): v for k, v in pins.items()}})
        return parse_policy(text, pins_text, source="policy.toml")


@pytest.fixture
def mirror(
    engine_db: Database, blobs: FilesystemBlobStore, static: StaticIndex, authority: LocalSigstore, tmp_path: Path
) -> Mirror:
    return Mirror(engine_db, blobs, static, authority, tmp_path, Clock())
