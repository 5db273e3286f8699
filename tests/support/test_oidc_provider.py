"""Tests of the OIDC issuer stand-in (tests/support/oidc_provider.py).

They check it against independent, real code: httpx fetches its discovery document and JWKS,
PyJWT (``jwt.PyJWKClient``) verifies what it signs, and the real ``id`` package, run in a
subprocess with a CI-shaped environment, fetches tokens from it. Each hostile token is shown to
fail PyJWT verification for the intended reason; where PyJWT has no opinion (the 64 KiB limit,
a foreign issuer's key the index also trusts), the test shows what the index must check itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import httpx
import jwt
import pytest
import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.oidc_provider import (
    DEFAULT_SHA,
    MAX_TOKEN_BYTES,
    OIDCProvider,
    circleci_claims,
    clean_ci_environ,
    forgejo_claims,
    github_actions_env,
    github_claims,
    gitlab_ci_env,
    gitlab_claims,
    gitlab_id_token_var_names,
    google_claims,
)

AUDIENCE = "assay-test"
LEEWAY = 60


@pytest.fixture(params=["RS256", "ES256"])
def provider(request: pytest.FixtureRequest) -> Iterator[OIDCProvider]:
    with OIDCProvider(algorithm=request.param) as idp:
        yield idp


@pytest.fixture
def rs256() -> Iterator[OIDCProvider]:
    with OIDCProvider() as idp:
        yield idp


def verify(
    idp: OIDCProvider, token: str, *, audience: str = AUDIENCE, strict_aud: bool = True
) -> dict[str, Any]:
    """How an index should verify: key by kid from the issuer's JWKS, one algorithm, pinned
    issuer, exact single audience, required claims, 60 s leeway."""
    client = jwt.PyJWKClient(idp.jwks_uri, cache_jwk_set=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key,
        algorithms=[idp.algorithm],
        audience=audience,
        issuer=idp.issuer,
        leeway=LEEWAY,
        options={"require": ["iss", "aud", "iat", "exp", "jti"], "strict_aud": strict_aud},
    )


def b64url_json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return result


# -- discovery, JWKS, signing -------------------------------------------------------------------


def test_discovery_document_and_jwks(provider: OIDCProvider) -> None:
    assert provider.issuer.startswith("http://127.0.0.1:")
    doc = httpx.get(f"{provider.issuer}/.well-known/openid-configuration").json()
    assert doc["issuer"] == provider.issuer
    assert doc["jwks_uri"] == f"{provider.issuer}/.well-known/jwks"
    assert doc["id_token_signing_alg_values_supported"] == [provider.algorithm]
    assert doc["response_types_supported"] == ["id_token"]
    assert "public" in doc["subject_types_supported"]
    expected_claims = {"sub", "aud", "repository_owner_id", "ci_config_ref_uri"}
    assert expected_claims <= set(doc["claims_supported"])

    jwks = httpx.get(doc["jwks_uri"]).json()
    assert jwks == provider.jwks()
    (key,) = jwks["keys"]
    assert key["kid"] == provider.current_kid
    assert key["alg"] == provider.algorithm
    assert key["use"] == "sig"
    assert key["kty"] == ("RSA" if provider.algorithm == "RS256" else "EC")
    assert "d" not in key  # public members only
    assert json.loads(provider.jwks_path.read_text()) == jwks


def test_token_verifies_with_pyjwkclient(provider: OIDCProvider) -> None:
    token = provider.token(AUDIENCE, github_claims())
    header = jwt.get_unverified_header(token)
    assert header == {"alg": provider.algorithm, "typ": "JWT", "kid": provider.current_kid}
    claims = verify(provider, token)
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == AUDIENCE
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] == claims["iat"]
    uuid.UUID(claims["jti"])
    assert claims["repository"] == "acme/widget"
    assert provider.token(AUDIENCE, {}) != provider.token(AUDIENCE, {})  # fresh jti each time


def test_omit_overrides_headers_and_lifetime(rs256: OIDCProvider) -> None:
    token = rs256.token(
        AUDIENCE,
        google_claims(),
        lifetime=60,
        omit=("jti", "nbf"),
        sub="override",
        headers={"typ": None, "x-test": "1"},
    )
    header = jwt.get_unverified_header(token)
    assert "typ" not in header
    assert header["x-test"] == "1"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "jti" not in claims
    assert "nbf" not in claims
    assert claims["sub"] == "override"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["email_verified"] is True

    exp = int(time.time()) + 30
    claims = verify(rs256, rs256.token(AUDIENCE, {}, exp=exp))
    assert claims["exp"] == exp


def test_issuer_with_path() -> None:
    with OIDCProvider(path="/_services/token") as ghes:
        assert ghes.issuer.endswith("/_services/token")
        doc = httpx.get(f"{ghes.issuer}/.well-known/openid-configuration").json()
        assert doc["issuer"] == ghes.issuer
        assert doc["jwks_uri"] == f"{ghes.issuer}/.well-known/jwks"
        root = f"http://{ghes.authority}/.well-known/openid-configuration"
        assert httpx.get(root).status_code == 404
        assert verify(ghes, ghes.token(AUDIENCE, github_claims()))["iss"] == ghes.issuer


def test_jwks_uri_follows_custom_route() -> None:
    with OIDCProvider(jwks_route="/oauth/discovery/keys") as gitlab:
        doc = httpx.get(f"{gitlab.issuer}/.well-known/openid-configuration").json()
        assert doc["jwks_uri"] == f"{gitlab.issuer}/oauth/discovery/keys"
        assert verify(gitlab, gitlab.token(AUDIENCE, gitlab_claims()))["project_path"]


def test_rotate_and_retire_keys(provider: OIDCProvider) -> None:
    old_kid = provider.current_kid
    old_token = provider.token(AUDIENCE, {})
    new_kid = provider.rotate_key()
    assert new_kid != old_kid
    assert provider.current_kid == new_kid
    served = httpx.get(provider.jwks_uri).json()
    assert [k["kid"] for k in served["keys"]] == [old_kid, new_kid]
    assert json.loads(provider.jwks_path.read_text()) == served

    new_token = provider.token(AUDIENCE, {})
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    verify(provider, new_token)
    verify(provider, old_token)  # both keys published during the overlap
    assert jwt.get_unverified_header(provider.token(AUDIENCE, {}, kid=old_kid))["kid"] == old_kid

    provider.retire_key(old_kid)
    assert [k["kid"] for k in provider.jwks()["keys"]] == [new_kid]
    assert [k["kid"] for k in json.loads(provider.jwks_path.read_text())["keys"]] == [new_kid]
    with pytest.raises(jwt.PyJWKClientError, match="Unable to find a signing key"):
        verify(provider, old_token)


def test_requests_log_counts_fetches(rs256: OIDCProvider) -> None:
    rs256.requests_log.clear()
    client = jwt.PyJWKClient(rs256.jwks_uri)  # caches the JWK set
    for _ in range(3):
        client.get_signing_key_from_jwt(rs256.token(AUDIENCE, {}))
    httpx.get(f"{rs256.issuer}/.well-known/openid-configuration")
    assert rs256.requests_log == ["/.well-known/jwks", "/.well-known/openid-configuration"]


def test_outage_and_discovery_overrides(rs256: OIDCProvider) -> None:
    rs256.outage_status = 503
    assert httpx.get(rs256.jwks_uri).status_code == 503
    assert httpx.get(rs256.discovery_url).status_code == 503
    rs256.outage_status = None
    rs256.discovery_overrides = {"issuer": "http://127.0.0.1:1"}
    assert httpx.get(rs256.discovery_url).json()["issuer"] == "http://127.0.0.1:1"


def test_jwks_file_without_server(tmp_path: Path) -> None:
    idp = OIDCProvider()
    try:
        assert not idp.running
        keys = json.loads(idp.jwks_path.read_text())
        token = idp.token(AUDIENCE, {}, iss="https://ci.example")
        key = jwt.PyJWKSet.from_dict(keys)[idp.current_kid]
        claims = jwt.decode(token, key, algorithms=["RS256"], audience=AUDIENCE)
        assert claims["iss"] == "https://ci.example"
        with pytest.raises(RuntimeError, match="start"):
            idp.token(AUDIENCE, {})
    finally:
        idp.stop()
    assert not idp.jwks_path.exists()


def test_restart_keeps_issuer() -> None:
    idp = OIDCProvider().start()
    try:
        issuer = idp.issuer
        idp.stop()
        idp.start()
        assert idp.issuer == issuer
        assert idp.jwks_path.exists()
        verify(idp, idp.token(AUDIENCE, {}))
    finally:
        idp.stop()


# -- the GitHub Actions token endpoint -----------------------------------------------------------


def test_github_endpoint_refuses_bad_requests(rs256: OIDCProvider) -> None:
    url = f"{rs256.github_token_request_url}&audience={AUDIENCE}"
    no_auth = httpx.get(url)
    assert no_auth.status_code == 401
    assert "message" in no_auth.json()
    basic = httpx.get(url, headers={"Authorization": f"basic {rs256.request_token}"})
    assert basic.status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "bearer not-the-token"})
    assert wrong.status_code == 403
    assert "message" in wrong.json()
    rs256.github_job = None
    no_job = httpx.get(url, headers={"Authorization": f"bearer {rs256.request_token}"})
    assert no_job.status_code == 403
    assert "id-token" in no_job.json()["message"]
    assert rs256.github_token_audiences == []


def _id_style(url: str, audience: str) -> str:
    """What `id` 1.6.1 does: merge `audience` into the URL's existing query."""
    parts = list(urlparse(url))
    query = dict(parse_qsl(parts[4]))
    query["audience"] = audience
    parts[4] = urlencode(query)
    return urlunparse(parts)


def _append_style(url: str, audience: str) -> str:
    """What uv's ambient-id (reqwest .query()) and the documented curl form do: append."""
    return f"{url}&{urlencode({'audience': audience})}"


@pytest.mark.parametrize("build_url", [_id_style, _append_style])
@pytest.mark.parametrize("scheme", ["bearer", "Bearer"])
def test_github_endpoint_serves_current_job(
    provider: OIDCProvider, build_url: Any, scheme: str
) -> None:
    provider.github_job = github_claims("acme/widget", "release.yml", environment="pypi")
    audience = "https://index.example/aud?x=1"
    response = httpx.get(
        build_url(provider.github_token_request_url, audience),
        headers={"Authorization": f"{scheme} {provider.request_token}"},
    )
    assert response.status_code == 200
    token = response.json()["value"]
    claims = verify(provider, token, audience=audience)
    assert claims["environment"] == "pypi"
    assert claims["sub"] == "repo:acme/widget:environment:pypi"
    assert claims["iat"] - claims["nbf"] == 600  # GitHub's shape
    assert claims["exp"] - claims["iat"] == 300
    assert provider.github_token_audiences == [audience]


def test_github_endpoint_default_audience(rs256: OIDCProvider) -> None:
    rs256.github_job = github_claims("octo/repo")
    response = httpx.get(
        rs256.github_token_request_url,
        headers={"Authorization": f"bearer {rs256.request_token}"},
    )
    claims = jwt.decode(response.json()["value"], options={"verify_signature": False})
    assert claims["aud"] == "https://github.com/octo"


# -- the real `id` client ----------------------------------------------------------------------


def _run_id(env: dict[str, str], audience: str = AUDIENCE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import id; print(id.detect_credential({audience!r}))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _on_gcp() -> bool:
    # `id` tries GCP before GitLab when the DMI product name says Google.
    try:
        name = Path("/sys/class/dmi/id/product_name").read_text().strip()
    except OSError:
        return False
    return name in {"Google", "Google Compute Engine"}


def test_id_detect_credential_from_github_endpoint(provider: OIDCProvider) -> None:
    provider.github_job = github_claims("acme/widget", "release.yml")
    env = {**clean_ci_environ(), **github_actions_env(provider)}
    result = _run_id(env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = verify(provider, token)
    assert provider.github_token_audiences == [AUDIENCE]
    assert {k: claims[k] for k in provider.github_job} == provider.github_job


def test_id_without_request_token_reports_permission_error(rs256: OIDCProvider) -> None:
    env = {**clean_ci_environ(), **github_actions_env(rs256)}
    del env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    result = _run_id(env)
    assert result.returncode != 0
    assert "GitHubOidcPermissionCredentialError" in result.stderr


def test_id_with_wrong_request_token_gets_403(rs256: OIDCProvider) -> None:
    rs256.github_job = github_claims()
    env = {**clean_ci_environ(), **github_actions_env(rs256)}
    env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "stolen"
    result = _run_id(env)
    assert result.returncode != 0
    assert "code=403" in result.stderr


@pytest.mark.skipif(_on_gcp(), reason="`id` would try the GCP metadata server first")
@pytest.mark.parametrize("audience", [AUDIENCE, "1assay", "https://index.example"])
def test_id_detect_credential_from_gitlab_env(provider: OIDCProvider, audience: str) -> None:
    token = provider.token(audience, gitlab_claims())
    env = {**clean_ci_environ(), **gitlab_ci_env(audience, token)}
    result = _run_id(env, audience)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == token
    assert verify(provider, token, audience=audience)["project_path"] == "acme/widget"


def test_clean_ci_environ_strips_ambient_markers() -> None:
    dirty = {
        "PATH": "/bin",
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": "x",
        "GITLAB_CI": "true",
        "PYPI_ID_TOKEN": "t",
        "CIRCLECI": "true",
        "BUILDKITE": "true",
        "GOOGLE_SERVICE_ACCOUNT_NAME": "sa",
        "NO_PROXY": "corp.example",
    }
    env = clean_ci_environ(dirty)
    assert env["PATH"] == "/bin"
    assert env["NO_PROXY"] == "corp.example,127.0.0.1,localhost"
    assert not {"GITHUB_ACTIONS", "GITLAB_CI", "PYPI_ID_TOKEN", "CIRCLECI"} & set(env)


@pytest.mark.parametrize(
    ("audience", "id_name", "uv_name"),
    [
        ("pypi", "PYPI_ID_TOKEN", "PYPI_ID_TOKEN"),
        ("testpypi", "TESTPYPI_ID_TOKEN", "TESTPYPI_ID_TOKEN"),
        ("https://x.y", "HTTPS___X_Y_ID_TOKEN", "HTTPS___X_Y_ID_TOKEN"),
        ("assay-test", "ASSAY_TEST_ID_TOKEN", "ASSAY_TEST_ID_TOKEN"),
        ("1pypi", "_PYPI_ID_TOKEN", "1PYPI_ID_TOKEN"),
        ("ß", "SS_ID_TOKEN", "__ID_TOKEN"),
    ],
)
def test_gitlab_variable_names(audience: str, id_name: str, uv_name: str) -> None:
    assert gitlab_id_token_var_names(audience) == (id_name, uv_name)
    env = gitlab_ci_env(audience, "tok")
    assert env == {"GITLAB_CI": "true", id_name: "tok", uv_name: "tok"}


def test_id_package_derives_the_same_gitlab_name() -> None:
    from id._internal.oidc import ambient  # the rule `id` really applies

    for audience in ("pypi", "1pypi", "https://x.y", "ß", "a b"):
        expected = ambient._env_var_regex.sub("_", audience.upper()) + "_ID_TOKEN"
        assert gitlab_id_token_var_names(audience)[0] == expected


# -- the real uv client (ambient-id) -------------------------------------------------------------

UV = Path(sys.executable).with_name("uv")


class _FakeIndexTLS:
    """Just enough of an index for `uv publish` (which forces https for the TP calls): records
    what uv sends to mint-token and upload. uv (0.13.8 here) also POSTs {"token": <minted>} to
    /_/oidc/burn-token after uploading (Warehouse's token-burning route); it only warns if
    that route is missing."""

    def __init__(self, tmp_path: Path, audience: str) -> None:
        self.audience = audience
        self.minted_from: list[str] = []
        self.upload_auth: list[str] = []
        ca = trustme.CA()
        self.ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        server_pem = tmp_path / "server.pem"
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
        app = Starlette(
            routes=[
                Route("/_/oidc/audience", self._audience),
                Route("/_/oidc/mint-token", self._mint, methods=["POST"]),
                Route("/_/oidc/burn-token", self._burn, methods=["POST"]),
                Route("/legacy/", self._upload, methods=["POST"]),
            ]
        )
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}/legacy/"
        config = uvicorn.Config(
            app, ssl_certfile=str(server_pem), log_config=None, lifespan="off", http="h11"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)

    async def _audience(self, request: Request) -> Response:
        return JSONResponse({"audience": self.audience})

    async def _mint(self, request: Request) -> Response:
        self.minted_from.append(json.loads(await request.body())["token"])
        return JSONResponse({"success": True, "token": "assay-upload-token", "expires": 0})

    async def _burn(self, request: Request) -> Response:
        return JSONResponse({})

    async def _upload(self, request: Request) -> Response:
        self.upload_auth.append(request.headers.get("authorization", ""))
        return Response("OK")

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def _uv_publish(index: _FakeIndexTLS, tmp_path: Path, ci_env: dict[str, str]) -> str:
    wheel = tmp_path / "widget-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("widget/__init__.py", "")
        zf.writestr(
            "widget-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: widget\nVersion: 1.0\n"
        )
        zf.writestr(
            "widget-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr("widget-1.0.dist-info/RECORD", "")
    env = {**clean_ci_environ(), **ci_env, "SSL_CERT_FILE": str(index.ca_file)}
    env.update({"UV_NO_CACHE": "1", "UV_NO_CONFIG": "1"})
    command = [str(UV), "publish", "--trusted-publishing", "always"]
    command += ["--publish-url", index.url, str(wheel)]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert index.upload_auth == [
        "Basic " + base64.b64encode(b"__token__:assay-upload-token").decode()
    ]
    (oidc_token,) = index.minted_from
    return oidc_token


@pytest.mark.skipif(not UV.exists(), reason="uv is not installed next to this Python")
def test_uv_fetches_token_from_github_endpoint(rs256: OIDCProvider, tmp_path: Path) -> None:
    rs256.github_job = github_claims("acme/widget", "release.yml")
    index = _FakeIndexTLS(tmp_path, AUDIENCE)
    try:
        token = _uv_publish(index, tmp_path, github_actions_env(rs256))
    finally:
        index.close()
    assert rs256.github_token_audiences == [AUDIENCE]
    assert verify(rs256, token)["job_workflow_ref"] == rs256.github_job["job_workflow_ref"]


@pytest.mark.skipif(not UV.exists(), reason="uv is not installed next to this Python")
@pytest.mark.skipif(_on_gcp(), reason="uv would try the GCP metadata server first")
def test_uv_reads_its_own_gitlab_variable(rs256: OIDCProvider, tmp_path: Path) -> None:
    audience = "1assay"  # `id` reads _ASSAY_ID_TOKEN, uv reads 1ASSAY_ID_TOKEN
    id_name, uv_name = gitlab_id_token_var_names(audience)
    assert id_name != uv_name
    env = gitlab_ci_env(audience, rs256.token(audience, gitlab_claims()))
    env[id_name] = "not-a-token"  # prove uv takes the other one
    index = _FakeIndexTLS(tmp_path, audience)
    try:
        token = _uv_publish(index, tmp_path, env)
    finally:
        index.close()
    assert token == env[uv_name]
    assert verify(rs256, token, audience=audience)["project_path"] == "acme/widget"


# -- claim builders ------------------------------------------------------------------------------


def test_github_claims_shape() -> None:
    claims = github_claims("Acme/Widget", "release.yml", ref="refs/heads/main")
    assert claims["sub"] == "repo:Acme/Widget:ref:refs/heads/main"
    assert claims["repository_owner"] == "Acme"
    assert claims["workflow_ref"] == "Acme/Widget/.github/workflows/release.yml@refs/heads/main"
    assert claims["job_workflow_ref"] == claims["workflow_ref"]
    assert claims["ref_type"] == "branch"
    assert claims["sha"] == DEFAULT_SHA
    assert len(DEFAULT_SHA) == 40
    assert "environment" not in claims
    assert all(isinstance(v, str) for v in claims.values())

    reusable = "acme/shared/.github/workflows/publish.yml@refs/heads/main"
    claims = github_claims(environment="release", job_workflow_ref=reusable, workflow_name="Rel")
    assert claims["sub"] == "repo:acme/widget:environment:release"
    assert claims["environment"] == "release"
    assert claims["job_workflow_ref"] == reusable
    assert claims["workflow"] == "Rel"
    assert claims["ref_type"] == "tag"
    assert github_claims(event_name="pull_request")["sub"] == "repo:acme/widget:pull_request"


def test_gitlab_claims_shape() -> None:
    claims = gitlab_claims()
    assert claims["sub"] == "project_path:acme/widget:ref_type:branch:ref:main"
    assert claims["ci_config_ref_uri"] == "gitlab.com/acme/widget//.gitlab-ci.yml@refs/heads/main"
    assert claims["ref_path"] == "refs/heads/main"
    assert claims["namespace_path"] == "acme"
    assert claims["ci_config_sha"] == claims["sha"]

    claims = gitlab_claims(
        "grp/sub/proj",
        "ci/release.yml",
        ref="v1.0",
        ref_type="tag",
        environment="pypi",
        instance_host="127.0.0.1:8443",
    )
    assert claims["namespace_path"] == "grp/sub"
    assert claims["ref_path"] == "refs/tags/v1.0"
    expected_uri = "127.0.0.1:8443/grp/sub/proj//ci/release.yml@refs/tags/v1.0"
    assert claims["ci_config_ref_uri"] == expected_uri
    assert claims["environment"] == "pypi"


def test_other_claim_sets() -> None:
    google = google_claims()
    assert google == {
        "azp": "1122334455",
        "sub": "1122334455",
        "email": "publisher@acme-ci.iam.gserviceaccount.com",
        "email_verified": True,
    }
    circle = circleci_claims("p-id", "pd-id", org_id="o-id", user_id="u-id")
    assert circle["sub"] == "org/o-id/project/p-id/user/u-id"
    assert circle["oidc.circleci.com/project-id"] == "p-id"
    assert circle["oidc.circleci.com/pipeline-definition-id"] == "pd-id"
    assert circle["oidc.circleci.com/vcs-origin"] == "github.com/acme/widget"
    assert isinstance(circle["oidc.circleci.com/context-ids"], list)
    assert circleci_claims(sub_v2=True)["sub"].endswith(
        "/vcs-origin/github.com/acme/widget/vcs-ref/refs/heads/main"
    )
    forgejo = forgejo_claims()
    assert forgejo["workflow_ref"] == "acme/widget/.forgejo/workflows/release.yml@refs/tags/v1.0.0"
    assert forgejo["sub"] == "repo:acme/widget:ref:refs/tags/v1.0.0"
    assert forgejo_claims(immutable_sub=True)["sub"].startswith("repo:acme-1234/widget-5678:")


# -- hostile tokens ------------------------------------------------------------------------------


def test_expired_token(provider: OIDCProvider) -> None:
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(provider, provider.expired_token(AUDIENCE, github_claims()))


def test_not_yet_valid_token(provider: OIDCProvider) -> None:
    token = provider.not_yet_valid_token(AUDIENCE, github_claims())
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["nbf"] > time.time() + LEEWAY
    assert claims["iat"] > time.time() + LEEWAY
    with pytest.raises(jwt.ImmatureSignatureError):
        verify(provider, token)


def test_wrong_audience_token(provider: OIDCProvider) -> None:
    with pytest.raises(jwt.InvalidAudienceError):
        verify(provider, provider.wrong_audience_token(AUDIENCE, github_claims()))


def test_audience_list_token(provider: OIDCProvider) -> None:
    token = provider.audience_list_token(AUDIENCE, github_claims())
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == [AUDIENCE, "other"]
    with pytest.raises(jwt.InvalidAudienceError):
        verify(provider, token)  # strict: aud must be exactly the one string
    verify(provider, token, strict_aud=False)  # PyJWT's default would have let it through


def test_alg_none_token(provider: OIDCProvider) -> None:
    token = provider.alg_none_token(AUDIENCE, github_claims())
    assert token.endswith(".")
    assert jwt.get_unverified_header(token)["alg"] == "none"
    with pytest.raises(jwt.InvalidAlgorithmError):
        verify(provider, token)


def test_hs256_with_public_key_token(provider: OIDCProvider) -> None:
    token = provider.hs256_with_public_key_token(AUDIENCE, github_claims())
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["kid"] == provider.current_kid
    # It really is an HMAC under the public PEM (what a confused verifier would check)...
    signing_input, _, signature = token.rpartition(".")
    mac = hmac.new(provider.public_key_pem(), signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(mac).rstrip(b"=").decode() == signature
    # ...and the intended refusal: HS256 is not the issuer's algorithm.
    with pytest.raises(jwt.InvalidAlgorithmError):
        verify(provider, token)
    with pytest.raises(jwt.InvalidKeyError):  # PyJWT also refuses a PEM as an HMAC secret
        jwt.decode(token, provider.public_key_pem(), algorithms=["HS256"], audience=AUDIENCE)


def test_unknown_kid_token(provider: OIDCProvider) -> None:
    token = provider.unknown_kid_token(AUDIENCE, github_claims())
    kid = jwt.get_unverified_header(token)["kid"]
    assert kid not in {k["kid"] for k in provider.jwks()["keys"]}
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == provider.issuer
    with pytest.raises(jwt.PyJWKClientError, match="Unable to find a signing key"):
        verify(provider, token)


def test_tampered_token(provider: OIDCProvider) -> None:
    token = provider.tampered_token(AUDIENCE, github_claims(), claim="repository", value="evil/x")
    assert b64url_json(token.split(".")[1])["repository"] == "evil/x"
    with pytest.raises(jwt.InvalidSignatureError):
        verify(provider, token)


def test_oversized_token(provider: OIDCProvider) -> None:
    token = provider.oversized_token(AUDIENCE, github_claims())
    assert len(token) > MAX_TOKEN_BYTES
    # Validly signed: PyJWT has no size limit, refusing it before any parsing is the index's job.
    assert len(verify(provider, token)["padding"]) > 40_000


def test_foreign_key_token(provider: OIDCProvider) -> None:
    with OIDCProvider(algorithm=provider.algorithm) as other:
        token = provider.foreign_key_token(AUDIENCE, github_claims(), other)
        header = jwt.get_unverified_header(token)
        assert header["kid"] == other.current_kid
        assert jwt.decode(token, options={"verify_signature": False})["iss"] == provider.issuer
        # Keys looked up in the claimed issuer's JWKS: no such kid there.
        with pytest.raises(jwt.PyJWKClientError, match="Unable to find a signing key"):
            verify(provider, token)
        # An index pooling all trusted keys would find a valid signature; only pinning the key
        # set to the token's issuer stops it. Verifying as `other` fails on the issuer instead.
        with pytest.raises(jwt.InvalidIssuerError):
            verify(other, token)
    throwaway_signed = provider.foreign_key_token(AUDIENCE, github_claims())
    with pytest.raises(jwt.PyJWKClientError):
        verify(provider, throwaway_signed)
