"""PEP 740 fixtures: the real attestations of shared/fixtures/pep740, the local Sigstore
authority (tests/support/sigstore_authority.py) and indexes trusting either root."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.publishing.conftest import AUDIENCE
from tests.support.oidc_provider import OIDCProvider
from tests.support.server import AssayServer
from tests.support.sigstore_authority import LocalSigstore
from tests.support.tls import TLS, tls_server

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"

__all__ = ["AUDIENCE", "FIXTURES", "GITHUB_ISSUER", "GITLAB_ISSUER", "fixture_copy", "mint"]


def fixture_copy(tmp: Path, *names: str) -> list[Path]:
    """Copy real fixture files into a test's own directory (never modify them in place)."""
    out = []
    for name in names:
        target = tmp / name
        shutil.copy(FIXTURES / name, target)
        out.append(target)
    return out


def attestation_json(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


def mint(server: AssayServer, token: str) -> str:
    with server.client() as http:
        response = http.post("/_/oidc/mint-token", json={"token": token})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


@pytest.fixture(scope="module")
def prod_index(tmp_path_factory: pytest.TempPathFactory, tls: TLS, idp: OIDCProvider) -> Iterator[AssayServer]:
    """An index on sigstore's production root. GitHub and GitLab's real issuer URLs are trusted
    with keys from the stand-in provider's JWKS file (the air-gapped configuration), so tokens
    can carry the real issuers the real attestations' certificates name."""
    server = tls_server(tmp_path_factory.mktemp("prod-index"), tls).start()
    server.admin("issuer", "add", "--issuer", GITHUB_ISSUER, "--jwks", str(idp.jwks_path))
    server.admin("issuer", "add", "--issuer", GITLAB_ISSUER, "--jwks", str(idp.jwks_path))
    server.admin("issuer", "add", "--issuer", idp.issuer)
    server.ensure_user("owner")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def local_sigstore(tmp_path_factory: pytest.TempPathFactory) -> LocalSigstore:
    return LocalSigstore(tmp_path_factory.mktemp("local-sigstore"))


@pytest.fixture(scope="module")
def local_index(
    tmp_path_factory: pytest.TempPathFactory,
    tls: TLS,
    idp: OIDCProvider,
    local_sigstore: LocalSigstore,
) -> Iterator[AssayServer]:
    """An index whose Sigstore trust root is the local signing authority's."""
    server = tls_server(
        tmp_path_factory.mktemp("local-index"),
        tls,
        args=("--sigstore-trust-root", str(local_sigstore.trusted_root_path)),
    ).start()
    server.admin("issuer", "add", "--issuer", GITHUB_ISSUER, "--jwks", str(idp.jwks_path))
    server.admin("issuer", "add", "--issuer", idp.issuer)
    server.ensure_user("owner")
    try:
        yield server
    finally:
        server.stop()


def served_provenance(server: AssayServer, project: str, filename: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    """Follow the PEP 691 page's provenance URL; return it and the provenance object."""
    with server.client() as http:
        page = http.get(f"/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        entry = next(f for f in page["files"] if f["filename"] == filename)
        url = entry["provenance"]
        assert url is not None, entry
        assert url.startswith("https://")  # PEP 740: a fully qualified URL
        response = http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
    return url, response.json()
