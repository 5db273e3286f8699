"""Trusted Publishing fixtures: the index over TLS (uv insists on https for /_/oidc/), a test CA
the clients trust, and the local OIDC provider standing in for the CI systems' issuers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.oidc_provider import OIDCProvider
from tests.support.server import AssayServer

AUDIENCE = "assay"


@dataclass(frozen=True)
class TLS:
    ca_file: Path
    cert_file: Path
    key_file: Path


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file = directory / "cert.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    key_file = directory / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    return TLS(ca_file, cert_file, key_file)


@pytest.fixture(scope="module")
def idp() -> Iterator[OIDCProvider]:
    with OIDCProvider() as provider:
        yield provider


def tls_server(data_dir: Path, tls: TLS, *, database_url: str | None = None, args: tuple[str, ...] = ()) -> AssayServer:
    return AssayServer(
        data_dir,
        database_url=database_url,
        args=["--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file), *args],
        ca_file=tls.ca_file,
    )


@pytest.fixture(scope="module")
def tp_index(tmp_path_factory: pytest.TempPathFactory, tls: TLS, idp: OIDCProvider) -> Iterator[AssayServer]:
    server = tls_server(tmp_path_factory.mktemp("tp-index"), tls).start()
    server.admin("issuer", "add", "--issuer", idp.issuer)
    server.ensure_user("owner")
    try:
        yield server
    finally:
        server.stop()
