"""Hostile tokens at /_/oidc/mint-token: each refused with the right PyPI error code, and
nothing minted (no token row appears)."""

from __future__ import annotations

import base64
import concurrent.futures
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.publishing.conftest import AUDIENCE
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.tls import TLS, tls_server

REPO = "acme/target"


@pytest.fixture(scope="module")
def victim(tp_index: AssayServer, idp: OIDCProvider) -> str:
    tp_index.admin("project", "create", "victim-project", "--owner", "owner")
    tp_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "victim-project",
        "--issuer",
        idp.issuer,
        "--repository",
        REPO,
        "--workflow",
        "release.yml",
    )
    return "victim-project"


def _tokens(server: AssayServer) -> int:
    return len(server.admin("token", "list").stdout.splitlines())


def _mint(server: AssayServer, body: dict[str, object] | bytes) -> httpx.Response:
    with server.client() as http:
        if isinstance(body, bytes):
            return http.post("/_/oidc/mint-token", content=body)
        return http.post("/_/oidc/mint-token", json=body)


CASES: dict[str, tuple[Callable[[OIDCProvider], str], str]] = {
    "expired": (lambda p: p.expired_token(AUDIENCE, github_claims(REPO)), "invalid-token"),
    "not yet valid": (lambda p: p.not_yet_valid_token(AUDIENCE, github_claims(REPO)), "invalid-token"),
    "wrong audience": (lambda p: p.wrong_audience_token(AUDIENCE, github_claims(REPO)), "invalid-token"),
    "audience list": (lambda p: p.audience_list_token(AUDIENCE, github_claims(REPO)), "invalid-token"),
    "alg none": (lambda p: p.alg_none_token(AUDIENCE, github_claims(REPO)), "invalid-token"),
    "HS256 keyed with the public key": (
        lambda p: p.hs256_with_public_key_token(AUDIENCE, github_claims(REPO)),
        "invalid-token",
    ),
    "unknown kid": (lambda p: p.unknown_kid_token(AUDIENCE, github_claims(REPO)), "invalid-token"),
    "signed by another issuer's key": (lambda p: p.foreign_key_token(AUDIENCE, github_claims(REPO)), "invalid-token"),
    "tampered payload": (
        lambda p: p.tampered_token(AUDIENCE, github_claims("acme/other"), claim="repository", value=REPO),
        "invalid-token",
    ),
    "pull_request_target": (
        lambda p: p.token(AUDIENCE, github_claims(REPO, event_name="pull_request_target")),
        "invalid-publisher",
    ),
    "another repository": (lambda p: p.token(AUDIENCE, github_claims("acme/other")), "invalid-publisher"),
    "another workflow": (lambda p: p.token(AUDIENCE, github_claims(REPO, "evil.yml")), "invalid-publisher"),
    "no kid": (lambda p: p.token(AUDIENCE, github_claims(REPO), headers={"kid": None}), "invalid-token"),
    "no exp": (lambda p: p.token(AUDIENCE, github_claims(REPO), omit=("exp",)), "invalid-token"),
    "no iat": (lambda p: p.token(AUDIENCE, github_claims(REPO), omit=("iat",)), "invalid-token"),
    "no jti": (lambda p: p.token(AUDIENCE, github_claims(REPO), omit=("jti",)), "invalid-token"),
    "unknown issuer": (
        lambda p: p.token(AUDIENCE, github_claims(REPO), iss="https://ci.attacker.example"),
        "invalid-payload",
    ),
    "not a JWT": (lambda p: "not-a-jwt", "invalid-payload"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_token_is_refused_and_nothing_minted(
    tp_index: AssayServer, idp: OIDCProvider, victim: str, case: str
) -> None:
    make, code = CASES[case]
    before = _tokens(tp_index)
    response = _mint(tp_index, {"token": make(idp)})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["code"] == code, body
    # Both error shapes: PyPI's and RFC 9457's (PEP 807).
    assert body["message"] == "Token request failed"
    assert body["status"] == 422
    assert body["title"]
    assert body["detail"]
    assert body["type"] == f"urn:assay:trusted-publishing:{code}"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert _tokens(tp_index) == before


def test_oversized_token_is_refused(tp_index: AssayServer, idp: OIDCProvider, victim: str) -> None:
    before = _tokens(tp_index)
    response = _mint(tp_index, {"token": idp.oversized_token(AUDIENCE, github_claims(REPO))})
    assert response.status_code in (413, 422)
    assert response.json()["errors"][0]["code"] == "invalid-payload"
    assert _tokens(tp_index) == before


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"token": 5}',
        b'{"nope": "x"}',
        b"\xff\xfe",
        b'{"token": "x", "features": ["teleport"]}',
        b'{"token": "x", "features": ["single-use-token", "multi-use-token"]}',
    ],
)
def test_malformed_request_bodies(tp_index: AssayServer, body: bytes) -> None:
    response = _mint(tp_index, body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "invalid-payload"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


DEEP = b"[" * 30000
#: JWTs whose header or claims nest past any recursion limit (PyJWT parses both with json.loads).
DEEP_JWTS = {
    "header": _b64(b"[" * 3000) + "." + _b64(b"{}") + "." + _b64(b"sig"),
    "claims": _b64(b'{"alg": "RS256"}') + "." + _b64(b'{"iss": ' + b"[" * 3000) + "." + _b64(b"sig"),
}


def _no_traceback(server: AssayServer) -> None:
    log = "\n".join(server.log)
    assert "Traceback" not in log
    assert "RecursionError" not in log


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_/oidc/mint-token", DEEP),
        ("/_/oidc/revoke-token", DEEP),
        ("/_/oidc/burn-token", b'{"token": ' + DEEP),
        ("/_/oidc/mint-token", b'{"token": "x", "features": ' + b"[" * 100 + b"]" * 100 + b"}"),
    ],
    ids=["mint", "revoke", "burn", "mint-balanced"],
)
def test_deeply_nested_json_is_invalid_payload_not_a_crash(tp_index: AssayServer, path: str, body: bytes) -> None:
    # Issue 10, item 3: answered before (and without) any credential, so no traceback either.
    with tp_index.client() as http:
        response = http.post(path, content=body)
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "invalid-payload"
    assert "nested more than 64 levels deep" in error["description"]
    _no_traceback(tp_index)


@pytest.mark.parametrize("part", sorted(DEEP_JWTS))
def test_a_jwt_nested_too_deeply_is_a_malformed_jwt(tp_index: AssayServer, part: str) -> None:
    # PyJWT turns the RecursionError of its json.loads into DecodeError itself (2.15): a guard
    # that this stays a 422, not a fix.
    response = _mint(tp_index, {"token": DEEP_JWTS[part]})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0] == {"code": "invalid-payload", "description": "malformed JWT"}
    _no_traceback(tp_index)


class _DeepJSON(http.server.BaseHTTPRequestHandler):
    """An issuer whose discovery document nests past any recursion limit."""

    def do_GET(self) -> None:
        body = DEEP
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_issuer_answering_deeply_nested_json_is_refused_cleanly(tp_index: AssayServer, idp: OIDCProvider) -> None:
    # The issuer's answers are outside input too (issue 10, item 3).
    hostile = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DeepJSON)
    threading.Thread(target=hostile.serve_forever, daemon=True).start()
    try:
        issuer = f"http://127.0.0.1:{hostile.server_address[1]}"
        tp_index.admin("issuer", "add", "--issuer", issuer)
        response = _mint(tp_index, {"token": idp.token(AUDIENCE, github_claims(REPO), iss=issuer)})
    finally:
        hostile.shutdown()
        hostile.server_close()
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "invalid-token"
    assert "nested more than 64 levels deep" in error["description"]
    _no_traceback(tp_index)


def test_replayed_token_is_refused(tp_index: AssayServer, idp: OIDCProvider, victim: str) -> None:
    token = idp.token(AUDIENCE, github_claims(REPO))
    assert _mint(tp_index, {"token": token}).status_code == 200
    before = _tokens(tp_index)
    replay = _mint(tp_index, {"token": token})
    assert replay.status_code == 422
    assert replay.json()["errors"][0]["code"] == "invalid-reuse-token"
    assert _tokens(tp_index) == before


def test_environment_is_required_when_configured(tp_index: AssayServer, idp: OIDCProvider) -> None:
    tp_index.admin("project", "create", "env-project", "--owner", "owner")
    tp_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "env-project",
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/env",
        "--workflow",
        "release.yml",
        "--environment",
        "Release",
    )
    without = _mint(tp_index, {"token": idp.token(AUDIENCE, github_claims("acme/env"))})
    assert without.json()["errors"][0]["code"] == "invalid-publisher"
    assert "environment" in without.json()["errors"][0]["description"]
    # GitHub environments compare case-insensitively (Warehouse).
    ok = _mint(tp_index, {"token": idp.token(AUDIENCE, github_claims("acme/env", environment="release"))})
    assert ok.status_code == 200, ok.text


def test_a_publisher_never_matches_tokens_of_another_issuer(tp_index: AssayServer, idp: OIDCProvider) -> None:
    with OIDCProvider() as other:
        tp_index.admin("issuer", "add", "--issuer", other.issuer)
        tp_index.admin("project", "create", "bound-project", "--owner", "owner")
        tp_index.admin(
            "publisher",
            "add",
            "github",
            "--project",
            "bound-project",
            "--issuer",
            idp.issuer,
            "--repository",
            "acme/bound",
            "--workflow",
            "release.yml",
        )
        # Same claims, valid token, but from a different trusted issuer.
        response = _mint(tp_index, {"token": other.token(AUDIENCE, github_claims("acme/bound"))})
    assert response.json()["errors"][0]["code"] == "invalid-publisher"


def _two_servers(data: Path, tls: TLS, database_url: str | None) -> Iterator[tuple[AssayServer, AssayServer]]:
    first = tls_server(data, tls, database_url=database_url).start()
    second = tls_server(data, tls, database_url=database_url).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def two_servers(request: pytest.FixtureRequest, tmp_path: Path, tls: TLS) -> Iterator[tuple[AssayServer, AssayServer]]:
    """Two `assay serve` processes on one database (and one data directory)."""
    if request.param == "postgresql":
        with fresh_database() as url:
            yield from _two_servers(tmp_path, tls, url)
    else:
        yield from _two_servers(tmp_path, tls, None)


def test_replay_across_two_server_processes(two_servers: tuple[AssayServer, AssayServer], idp: OIDCProvider) -> None:
    first, second = two_servers
    first.admin("issuer", "add", "--issuer", idp.issuer)
    first.ensure_user("owner")
    first.admin("project", "create", "shared", "--owner", "owner")
    first.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "shared",
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/shared",
        "--workflow",
        "release.yml",
    )
    # Sequential: minted on one process, replayed on the other.
    token = idp.token(AUDIENCE, github_claims("acme/shared"))
    assert _mint(first, {"token": token}).status_code == 200
    assert _mint(second, {"token": token}).json()["errors"][0]["code"] == "invalid-reuse-token"
    # Concurrent: the same fresh token sent to both processes at once, many times over.
    for _ in range(10):
        token = idp.token(AUDIENCE, github_claims("acme/shared"))
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda s, t=token: _mint(s, {"token": t}), [first, second, first, second]))
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 422, 422, 422], [r.text for r in results]
        assert {r.json()["errors"][0]["code"] for r in results if r.status_code == 422} == {"invalid-reuse-token"}


def test_a_refusal_never_shows_another_projects_publisher(tp_index: AssayServer, idp: OIDCProvider) -> None:
    # Issue 10 item 4: a GitHub publisher for `demo` and, registered first on the same issuer, a
    # generic OIDC publisher for `globproj`. A refused `demo` token was told globproj's pattern.
    tp_index.cli("project", "create", "globproj", "--owner", "owner")
    tp_index.cli("project", "create", "demo", "--owner", "owner")
    tp_index.cli(
        "publisher", "add", "oidc", "--project", "globproj", "--issuer", idp.issuer,
        "--claim", "sub=repo:acme/glob:**", "--claim", "ref=refs/tags/*",
    )  # fmt: skip
    tp_index.cli(
        "publisher", "add", "github", "--project", "demo", "--issuer", idp.issuer,
        "--repository", "acme/demo", "--workflow", "release.yml",
    )  # fmt: skip

    def refused(claims: dict[str, object]) -> str:
        response = _mint(tp_index, {"token": idp.token(AUDIENCE, claims)})
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["code"] == "invalid-publisher"
        assert "acme/glob" not in response.text, response.text
        assert "refs/tags/*" not in response.text, response.text
        return str(response.json()["errors"][0]["description"])

    # demo's own workload, wrong workflow: told by demo's publisher, which its repository names.
    wrong_workflow = refused(github_claims("acme/demo", "evil.yml"))
    assert "evil.yml" in wrong_workflow, wrong_workflow
    assert "'release.yml'" in wrong_workflow, wrong_workflow
    # A workload no publisher is for: only what the token itself says is echoed back.
    stranger = refused(github_claims("acme/stranger", "release.yml"))
    assert "no trusted publisher matches this token" in stranger, stranger
    assert f"issuer {idp.issuer!r}" in stranger, stranger
    assert "repository 'acme/stranger'" in stranger, stranger
    assert "release.yml" not in stranger.replace("acme/stranger", ""), stranger
    # The generic publisher's own workload (its sub matched) is told which constraint failed.
    response = _mint(tp_index, {"token": idp.token(AUDIENCE, github_claims("acme/glob", ref="refs/heads/main"))})
    assert "'ref'" in response.json()["errors"][0]["description"], response.text
    assert "refs/tags/*" in response.json()["errors"][0]["description"], response.text

class _DeepIndex(http.server.BaseHTTPRequestHandler):
    """An index whose every answer (discovery, audience, mint, an error) nests past any
    recursion limit: what ``assay publish`` reads is outside input too."""

    def _deep(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(DEEP)))
        self.end_headers()
        self.wfile.write(DEEP)

    def do_GET(self) -> None:
        self._deep(200)

    def do_POST(self) -> None:
        self._deep(200 if self.path.endswith("/mint-token") else 422)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_assay_publish_refuses_an_index_answering_deeply_nested_json() -> None:
    # Issue 11: the client's JSON edges are pydantic models behind the depth guard; before,
    # httpx's response.json() raised RecursionError, a traceback instead of a message.
    from assay.publishing import client as pub

    hostile = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DeepIndex)
    threading.Thread(target=hostile.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{hostile.server_address[1]}"
    fixed = pub.Endpoints(f"{origin}/_/oidc/audience", f"{origin}/_/oidc/mint-token", f"{origin}/x", False)
    try:
        with httpx.Client() as http_client:
            with pytest.raises(pub.PublishError, match="not with a PEP 807 discovery document"):
                pub.discover(http_client, f"{origin}/legacy/")
            with pytest.raises(pub.PublishError, match="did not return"):
                pub.get_audience(http_client, fixed)
            with pytest.raises(pub.PublishError, match="without a token"):
                pub.mint(http_client, fixed, "oidc")
            warning = pub.revoke(http_client, fixed, pub.UploadToken("t", pub.dt.datetime.now(pub.dt.UTC)))
            assert warning is not None
            assert "HTTP 422" in warning
    finally:
        hostile.shutdown()
        hostile.server_close()
