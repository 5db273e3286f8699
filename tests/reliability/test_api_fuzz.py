"""Issue 6, item 4: schemathesis against a live server, from docs/openapi.yaml (the JSON endpoints
and the upload form). For every operation it generates requests (valid and invalid: any path,
header, query and body values) and checks each response: never a 5xx, a status code the
description lists, the media type it lists, a body that matches its schema, the headers it
promises. Both backends: PostgreSQL refuses some strings SQLite stores (NUL), so a request can
reach a database error on one and not the other.

Examples per operation: ASSAY_API_FUZZ_EXAMPLES (CI 25; the long run is in docs/reliability.md).
Besides the generated requests, real ones (an existing project, release, provenance) are checked
against the same description, so its 200 shapes are proven too, not only its errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.reliability.conftest import API_EXAMPLES, fsck_clean
from tests.support.dists import make_wheel
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.server import AssayServer
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.upload import basic, upload

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def schema() -> Any:
    return schemathesis.openapi.from_path(DOC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AssayServer, str]]:
    """A server with one project holding an attested wheel; yields it and an API token."""
    from tests.support.postgres import fresh_database

    tmp = tmp_path_factory.mktemp(f"api-fuzz-{request.param}")
    sigstore = LocalSigstore(tmp / "sigstore")
    idp = OIDCProvider()

    def run(url: str | None) -> Iterator[tuple[AssayServer, str]]:
        server = AssayServer(
            tmp / "data", database_url=url, args=["--sigstore-trust-root", str(sigstore.trusted_root_path)]
        ).start()
        try:
            token = server.quick_token("fuzzer")
            server.cli("issuer", "add", "--issuer", GITHUB_ISSUER, "--jwks", str(idp.jwks_path))
            server.quick_user("owner")
            server.cli("project", "create", "fuzzed", "--owner", "owner")
            server.cli(
                "publisher", "add", "github", "--project", "fuzzed", "--repository", "acme/fuzzed",
                "--workflow", "release.yml",
            )
            wheel = make_wheel(tmp, "fuzzed", "1.0", requires_python=">=3.8")
            attestation = sigstore.attest_file(wheel, CertIdentity.github("acme/fuzzed", "release.yml"))
            with server.client() as http:
                jwt = idp.token("assay", {**github_claims("acme/fuzzed", "release.yml"), "iss": GITHUB_ISSUER})
                minted = http.post("/_/oidc/mint-token", json={"token": jwt}).json()["token"]
                r = upload(http, wheel, minted, attestations=f"[{attestation.model_dump_json()}]")
                assert r.status_code == 200, r.text
                # Issue 14: a staged project of the fuzzer's, with one open stage.
                server.cli("project", "create", "gated", "--owner", "fuzzer")
                server.cli("project", "set", "gated", "--releases", "staged")
                r = upload(http, make_wheel(tmp, "gated", "1.0"), token)
                assert r.status_code == 200, r.text
                assert "staged" in r.text
            yield server, token
            fsck_clean(server)
        finally:
            server.stop()

    if request.param == "postgresql":
        with fresh_database() as url:
            yield from run(url)
    else:
        yield from run(None)


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operation: Any, url: str, token: str, tried: dict[str, int]) -> None:
    # Valid requests and invalid ones (values that break the described schema) alike.
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

    @settings(max_examples=API_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: Any) -> None:
        tried[operation.label] += 1
        authed = case.path == "/legacy/" or case.path.startswith("/_/releases/")
        headers = basic(token) if authed else None
        response = case.call(base_url=url, headers=headers, allow_redirects=False, timeout=60)
        case.validate_response(response, checks=CHECKS)

    check()


def test_generated_requests_conform(schema: Any, live: tuple[AssayServer, str]) -> None:
    server, token = live
    tried: dict[str, int] = {}
    for operation in _operations(schema):
        tried[operation.label] = 0
        _fuzz(operation, server.url, token, tried)
    assert all(tried.values()), tried
    print(f"\nschemathesis: {sum(tried.values())} requests over {len(tried)} operations: {tried}")


@pytest.mark.parametrize(
    ("path", "method", "parameters", "status"),
    [
        ("/simple/", "GET", {}, 200),
        ("/simple/", "GET", {"headers": {"Accept": "application/vnd.pypi.simple.v1+json"}}, 200),
        ("/simple/{project}/", "GET", {"path_parameters": {"project": "fuzzed"}}, 200),
        (
            "/simple/{project}/",
            "GET",
            {"path_parameters": {"project": "fuzzed"}, "query": {"format": "application/vnd.pypi.simple.v1+json"}},
            200,
        ),
        ("/simple/{project}/", "GET", {"path_parameters": {"project": "Fuzzed"}}, 301),
        ("/pypi/{project}/json", "GET", {"path_parameters": {"project": "fuzzed"}}, 200),
        ("/pypi/{project}/{version}/json", "GET", {"path_parameters": {"project": "fuzzed", "version": "1.0"}}, 200),
        (
            "/integrity/{project}/{version}/{filename}/provenance",
            "GET",
            {"path_parameters": {"project": "fuzzed", "version": "1.0", "filename": "fuzzed-1.0-py3-none-any.whl"}},
            200,
        ),
        # A NUL reaches PostgreSQL as a query parameter unless refused first (it was a 500).
        (
            "/integrity/{project}/{version}/{filename}/provenance",
            "GET",
            {"path_parameters": {"project": "fuzzed", "version": "1.0", "filename": "a\x00b.whl"}},
            404,
        ),
        (
            "/integrity/{project}/{version}/{filename}/provenance",
            "GET",
            {"path_parameters": {"project": "a\x00", "version": "1.0", "filename": "x.whl"}},
            404,
        ),
        # Issue 13: the transparency log (one upload: a one-entry tree).
        ("/log/checkpoint", "GET", {}, 200),
        ("/log/tile/{path}", "GET", {"path_parameters": {"path": "0/000.p/1"}}, 200),
        ("/log/tile/{path}", "GET", {"path_parameters": {"path": "entries/000.p/1"}}, 200),
        ("/log/tile/{path}", "GET", {"path_parameters": {"path": "0/000"}}, 404),
        ("/log/tile/{path}", "GET", {"path_parameters": {"path": "0/0"}}, 404),
        ("/files/{key}.tlog-proof", "GET", {"path_parameters": {"key": "ab/cd/ef/nothing.whl"}}, 404),
        ("/_/oidc/audience", "GET", {}, 200),
        ("/.well-known/pytp", "GET", {"query": {"discover": "/legacy/"}}, 200),
        ("/_/oidc/mint-token", "POST", {"body": {"token": "not.a.jwt"}}, 422),
        ("/_/oidc/revoke-token", "POST", {"body": {"token": "assay-0123456789abcdef_x"}}, 422),
        # Issue 14: the maintainers' stage API (with the owner's token), and the public statements.
        ("/_/releases/{project}/", "GET", {"path_parameters": {"project": "gated"}}, 200),
        ("/_/releases/{project}/{version}/", "GET", {"path_parameters": {"project": "gated", "version": "1.0"}}, 200),
        ("/_/releases/{project}/{version}/", "GET", {"path_parameters": {"project": "gated", "version": "2.0"}}, 404),
        ("/_/releases/{project}/{version}/", "GET", {"path_parameters": {"project": "fuzzed", "version": "1.0"}}, 403),
        (
            "/_/releases/{project}/{version}/approve",
            "POST",
            {"path_parameters": {"project": "gated", "version": "1.0"}, "body": {"totp": "000000"}},
            403,
        ),
        (
            "/_/releases/{project}/{version}/approvals",
            "GET",
            {"path_parameters": {"project": "fuzzed", "version": "1.0"}},
            404,
        ),
    ],
)
def test_real_responses_conform(
    schema: Any, live: tuple[AssayServer, str], path: str, method: str, parameters: dict[str, Any], status: int
) -> None:
    server, token = live
    case = schema[path][method].Case(**parameters)
    headers = basic(token) if path.startswith("/_/releases/") and not path.endswith("/approvals") else None
    response = case.call(base_url=server.url, headers=headers, allow_redirects=False, timeout=60)
    assert response.status_code == status, response.text
    case.validate_response(response, checks=CHECKS)
    if status == 200 and "json" in response.headers.get("content-type", ""):
        json.loads(response.content)
