"""Issue 14, item 3: ``assay publish --identity-token`` signs each file as the maintainer the
token names (the real ``sigstore`` signing flow, against the Fulcio and Rekor stand-ins of
tests/support/sigstore_services.py over the local authority) and uploads it with an API token;
the index verifies the attestation under the same root and records the maintainer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dists import build_project
from tests.support.oidc_provider import OIDCProvider
from tests.support.server import AssayServer, client_environ
from tests.support.sigstore_authority import LocalSigstore
from tests.support.sigstore_services import SIGSTORE_AUDIENCE, SigstoreServices


@pytest.fixture(scope="module")
def sigstore_services(local_sigstore: LocalSigstore, idp: OIDCProvider) -> Iterator[SigstoreServices]:
    services = SigstoreServices(local_sigstore, idp.jwks_path).start()
    try:
        yield services
    finally:
        services.stop()


def _publish(server: AssayServer, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assay", "publish", "--repository-url", server.upload_url, *args],
        capture_output=True,
        text=True,
        env=client_environ({"SSL_CERT_FILE": str(server.ca_file), **env}),
        timeout=120,
    )


def test_assay_publish_signs_with_an_identity_token_and_uploads(
    signed_index: AssayServer,
    sigstore_services: SigstoreServices,
    idp: OIDCProvider,
    unique: str,
    tmp_path: Path,
) -> None:
    server = signed_index
    server.quick_user("fellow")
    server.cli("project", "create", unique, "--owner", "fellow")
    server.cli("maintainer", "add", unique, "--issuer", idp.issuer, "--email", "fellow@acme.example")
    api_token = server.quick_token("fellow")
    config = sigstore_services.write_client_trust_config(tmp_path / "trust-config.json")
    built = build_project(tmp_path, unique, "1.0")
    identity = idp.token(
        SIGSTORE_AUDIENCE, {"sub": "fellow-1234", "email": "fellow@acme.example", "email_verified": True}
    )

    result = _publish(
        server,
        "--sigstore-trust-config",
        str(config),
        str(built.wheel),
        str(built.sdist),
        env={"ASSAY_PUBLISH_TOKEN": api_token, "SIGSTORE_ID_TOKEN": identity},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"signed {built.wheel.name} as fellow@acme.example (issuer {idp.issuer})" in result.stdout
    assert "with 1 attestation(s)" in result.stdout
    assert (built.wheel.parent / f"{built.wheel.name}.publish.attestation").is_file()
    assert [i.san for i in sigstore_services.issued][-1] == "fellow@acme.example"  # one certificate for both

    with server.client() as http:
        page = http.get(f"/simple/{unique}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        assert len(page["files"]) == 2
        for entry in page["files"]:
            provenance = http.get(entry["provenance"]).json()
            (bundle,) = provenance["attestation_bundles"]
            assert bundle["publisher"] == {"kind": "Maintainer", "issuer": idp.issuer, "email": "fellow@acme.example"}


def test_assay_publish_signed_by_another_identity_is_refused(
    signed_index: AssayServer,
    sigstore_services: SigstoreServices,
    idp: OIDCProvider,
    unique: str,
    tmp_path: Path,
) -> None:
    server = signed_index
    server.quick_user("fellow3")
    server.cli("project", "create", unique, "--owner", "fellow3")
    server.cli("maintainer", "add", unique, "--issuer", idp.issuer, "--email", "fellow3@acme.example")
    config = sigstore_services.write_client_trust_config(tmp_path / "trust-config.json")
    built = build_project(tmp_path, unique, "1.0")
    identity = idp.token(SIGSTORE_AUDIENCE, {"sub": "m-1", "email": "mallory@acme.example", "email_verified": True})
    result = _publish(
        server,
        "--sigstore-trust-config",
        str(config),
        "--identity-token",
        identity,
        "--token",
        server.quick_token("fellow3"),
        str(built.sdist),
        env={},
    )
    assert result.returncode != 0
    assert "signed by mallory@acme.example" in result.stderr
    assert "not a registered maintainer" in result.stderr
    # A token that is not for Sigstore (another audience) is refused before anything is signed.
    wrong = idp.token("assay", {"sub": "m-1"})
    result = _publish(
        server, "--sigstore-trust-config", str(config), "--identity-token", wrong, str(built.sdist), env={}
    )
    assert result.returncode != 0
    assert "audience 'sigstore'" in result.stderr
