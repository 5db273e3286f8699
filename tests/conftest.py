"""Shared fixtures: real servers (SQLite and PostgreSQL), users, tokens."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.oidc_provider import OIDCProvider
from tests.support.s3 import CREDENTIALS, S3Server, s3_server
from tests.support.server import AssayServer, serve_on
from tests.support.tls import TLS, make_tls

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures" / "pep740"

_counter = itertools.count()


@pytest.fixture
def unique() -> str:
    """A project name no other test uses (servers are shared within a module)."""
    return f"proj-{next(_counter)}-{secrets.token_hex(3)}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The ``index`` fixture's backends: SQLite and PostgreSQL for every module; an S3 bucket
    (blobs in object storage, on SQLite) too for the modules that set ``S3_BACKEND = True``
    (the upload, read and fsck tests, issue 16: the rest never touch blobs differently)."""
    if "index" in metafunc.fixturenames:
        backends = ["sqlite", "postgresql"]
        if getattr(metafunc.module, "S3_BACKEND", False):
            backends.append("s3")
        metafunc.parametrize("index", backends, indirect=True, scope="module")


@pytest.fixture(scope="module")
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    """One server per module and backend; tests use unique project names."""
    s3 = request.getfixturevalue("s3") if request.param == "s3" else None
    yield from serve_on(tmp_path_factory.mktemp(f"index-{request.param}"), request.param, s3=s3)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A stand-in for AWS S3, MinIO or Ceph (which cannot run here): moto in server mode on a
    loopback port, one per session (see tests/support/s3.py); each server gets a bucket.
    The fake credentials are set in this process too: tests read the bucket (``blobs()``)."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        with s3_server() as server:
            yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def sqlite_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    yield from serve_on(tmp_path_factory.mktemp("index-sqlite"), "sqlite")


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    """A test CA and a server certificate for 127.0.0.1 (see tests/support/tls.py)."""
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def idp() -> Iterator[OIDCProvider]:
    """A stand-in CI provider's OIDC issuer on loopback (see tests/support/oidc_provider.py)."""
    with OIDCProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def alice_token(sqlite_index: AssayServer) -> str:
    sqlite_index.ensure_user("alice")
    return sqlite_index.token("alice")
