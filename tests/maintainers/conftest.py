"""Maintainer-signed releases (issue 14, items 3 and 5): a TLS index per backend whose Sigstore
trust root is the local signing authority's (tests/support/sigstore_authority.py), the OIDC
stand-in trusted as an issuer, and a maintainer with a token and TOTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.support.oidc_provider import OIDCProvider
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.sigstore_authority import LocalSigstore
from tests.support.tls import TLS, tls_server

#: The OIDC issuer a maintainer's certificates name (a company's own identity provider).
MAINTAINER_ISSUER = "https://login.acme.example"


@pytest.fixture(scope="module")
def local_sigstore(tmp_path_factory: pytest.TempPathFactory) -> LocalSigstore:
    return LocalSigstore(tmp_path_factory.mktemp("local-sigstore"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def signed_index(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tls: TLS,
    idp: OIDCProvider,
    local_sigstore: LocalSigstore,
) -> Iterator[AssayServer]:
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if request.param == "postgresql" else None
        server = tls_server(
            tmp_path_factory.mktemp(f"signed-{request.param}"),
            tls,
            database_url=url,
            args=("--sigstore-trust-root", str(local_sigstore.trusted_root_path)),
        ).start()
        stack.callback(server.stop)
        server.cli("issuer", "add", "--issuer", idp.issuer)
        yield server
