"""Trusted Publishing into several indexes on one server (issue 11, part 3; PEP 807).

A publisher belongs to one index, and the token an exchange mints is valid on that index only.
The site-root ``/_/oidc/`` endpoints (which uv and twine derive from the upload URL's host)
find the publisher in any index that uses the server's audience; an index with an audience of
its own is reached through PEP 807 discovery of its upload URL (``assay publish``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from uv import find_uv_bin

from tests.publishing.conftest import AUDIENCE
from tests.support.dists import build_project
from tests.support.oidc_provider import OIDCProvider, github_actions_env, github_claims
from tests.support.server import AssayServer, client_environ
from tests.support.tls import TLS, tls_server
from tests.support.upload import upload

UV = find_uv_bin()
TEAM_AUDIENCE = "assay-team-audience"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tls: TLS, idp: OIDCProvider) -> Iterator[AssayServer]:
    server = tls_server(tmp_path_factory.mktemp("tp-indexes"), tls).start()
    server.admin("issuer", "add", "--issuer", idp.issuer)
    server.ensure_user("owner")
    server.cli("index", "create", "team")  # the server's audience
    server.cli("index", "create", "sep", "--audience", TEAM_AUDIENCE)  # its own
    try:
        yield server
    finally:
        server.stop()


def _publisher(server: AssayServer, idp: OIDCProvider, index: str | None, project: str, repository: str) -> None:
    where = ["--index", index] if index else []
    server.cli(
        "publisher",
        "add",
        "github",
        *where,
        "--project",
        project,
        "--owner",
        "owner",
        "--issuer",
        idp.issuer,
        "--repository",
        repository,
        "--workflow",
        "release.yml",
    )


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _files(server: AssayServer, prefix: str, project: str) -> dict[str, str]:
    with server.client() as http:
        response = http.get(f"{prefix}/pypi/{project}/json")
    assert response.status_code == 200, response.text
    return {f["filename"]: f["trusted_publisher"]["repository"] for f in response.json()["urls"]}


def test_uv_publishes_into_each_index_through_the_root_endpoints(
    server: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    # One project name, a pending publisher in each index, each a different repository.
    _publisher(server, idp, None, unique, "acme/default-side")
    _publisher(server, idp, "team", unique, "acme/team-side")
    env = client_environ({**github_actions_env(idp), "SSL_CERT_FILE": str(server.ca_file)})
    for index, repository in ((None, "acme/default-side"), ("team", "acme/team-side")):
        idp.github_job = github_claims(repository, "release.yml")
        built = build_project(tmp_path / (index or "root"), unique, "1.0")
        url = server.url + (f"/{index}" if index else "") + "/legacy/"
        result = _run([UV, "publish", "--publish-url", url, "--trusted-publishing", "always", str(built.wheel)], env)
        assert result.returncode == 0, result.stdout + result.stderr
    assert set(_files(server, "", unique).values()) == {"acme/default-side"}
    assert set(_files(server, "/team", unique).values()) == {"acme/team-side"}


def test_a_minted_token_is_valid_on_its_publishers_index_only(
    server: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    _publisher(server, idp, "team", unique, "acme/only-team")
    idp.github_job = github_claims("acme/only-team", "release.yml")
    token = idp.token(AUDIENCE, idp.github_job)
    with server.client() as http:
        minted = http.post("/_/oidc/mint-token", json={"token": token})
        assert minted.status_code == 200, minted.text
        upload_token = minted.json()["token"]
    built = build_project(tmp_path, unique, "1.0")
    with server.client() as http:
        refused = upload(http, built.wheel, upload_token)  # to the default index
        assert refused.status_code == 403
        assert "not valid on the index 'default'" in refused.text
    with server.client(index="team") as http:
        accepted = upload(http, built.wheel, upload_token)  # to the team index, where its publisher is
        assert accepted.status_code == 200, accepted.text


def test_discovery_names_each_indexs_own_endpoints(server: AssayServer) -> None:
    with server.client() as http:
        team = http.get("/.well-known/pytp", params={"discover": "/team/legacy/"}).json()
        root = http.get("/.well-known/pytp", params={"discover": "/legacy/"}).json()
        assert team["token-mint-endpoint"] == server.url + "/team/_/oidc/mint-token"
        assert root["token-mint-endpoint"] == server.url + "/_/oidc/mint-token"
        assert http.get("/sep/_/oidc/audience").json() == {"audience": TEAM_AUDIENCE}
        assert http.get("/team/_/oidc/audience").json() == {"audience": AUDIENCE}
        assert http.get("/.well-known/pytp", params={"discover": "/nosuch/legacy/"}).status_code == 404
        assert http.get("/.well-known/pytp", params={"discover": "/default/legacy/"}).status_code == 404


def test_assay_publish_discovers_an_index_with_its_own_audience(
    server: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    _publisher(server, idp, "sep", unique, "acme/separate")
    idp.github_job = github_claims("acme/separate", "release.yml")
    built = build_project(tmp_path, unique, "1.0")
    env = client_environ({**github_actions_env(idp), "SSL_CERT_FILE": str(server.ca_file)})
    asked = len(idp.github_token_audiences)
    result = _run(
        [
            sys.executable,
            "-m",
            "assay",
            "publish",
            "--repository-url",
            server.url + "/sep/legacy/",
            *map(str, built.files),
        ],
        env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PEP 807 discovery" in result.stdout
    assert idp.github_token_audiences[asked:] == [TEAM_AUDIENCE]  # the index's own audience
    assert result.stdout.count("saved the log receipt") == 2
    assert set(_files(server, "/sep", unique).values()) == {"acme/separate"}
    # The site root's endpoint does not mint for an index with its own audience.
    token = idp.token(AUDIENCE, idp.github_job)
    with server.client() as http:
        refused = http.post("/_/oidc/mint-token", json={"token": token})
    assert refused.status_code == 422
    assert "no trusted publisher matches" in refused.text
