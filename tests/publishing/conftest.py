"""Trusted Publishing fixtures: the index over TLS (uv insists on https for /_/oidc/), a test CA
the clients trust, and the local OIDC provider standing in for the CI systems' issuers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.oidc_provider import OIDCProvider
from tests.support.server import AssayServer
from tests.support.tls import TLS, tls_server

__all__ = ["AUDIENCE", "TLS", "tls_server"]

AUDIENCE = "assay"


@pytest.fixture(scope="module")
def tp_index(tmp_path_factory: pytest.TempPathFactory, tls: TLS, idp: OIDCProvider) -> Iterator[AssayServer]:
    server = tls_server(tmp_path_factory.mktemp("tp-index"), tls).start()
    server.admin("issuer", "add", "--issuer", idp.issuer)
    server.ensure_user("owner")
    try:
        yield server
    finally:
        server.stop()
