"""Shared fixtures: real servers (SQLite and PostgreSQL), users, tokens."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.oidc_provider import OIDCProvider
from tests.support.server import AssayServer, serve_on
from tests.support.tls import TLS, make_tls

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures" / "pep740"

_counter = itertools.count()


@pytest.fixture
def unique() -> str:
    """A project name no other test uses (servers are shared within a module)."""
    return f"proj-{next(_counter)}-{secrets.token_hex(3)}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    """One server per module and backend; tests use unique project names."""
    yield from serve_on(tmp_path_factory.mktemp(f"index-{request.param}"), request.param)


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
