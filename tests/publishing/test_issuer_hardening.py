"""Issue 10 hardening of trusted issuers: where keys may be fetched from (plain http only to
loopback, decided on the parsed URL), the maximum token age, unknown key ids not echoed at
length, and issuers whose real ``iss`` ends in ``/``.

The server here runs with every outgoing request routed through a *trap* proxy on loopback
(``ALL_PROXY``; ``NO_PROXY`` exempts only 127.0.0.1, where the stand-in issuers listen). A
request to any other host would reach the trap instead of the network, so "refused before any
connection" is checked by the trap having seen nothing, and no test here can touch the network
even when the code under test is wrong.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.publishing.conftest import AUDIENCE, TLS
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.server import AssayServer

#: Hosts that only look like loopback (pypi/warehouse-style string-prefix checks let them pass).
LOOKALIKES = [
    "http://127.0.0.1.evil.example/jwks",
    "http://localhost.evil.example/jwks",
    "http://127.0.0.1@evil.example/jwks",
    "http://localhost:80@evil.example/jwks",
    "http://[::1]@evil.example/jwks",
]


class Trap:
    """A TCP listener that records every connection it accepts and closes it at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def trap() -> Iterator[Trap]:
    t = Trap()
    try:
        yield t
    finally:
        t.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, tls: TLS, trap: Trap) -> Iterator[AssayServer]:
    proxy = f"http://127.0.0.1:{trap.port}"
    server = AssayServer(
        tmp_path_factory.mktemp("guarded"),
        args=["--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)],
        env={"ALL_PROXY": proxy, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": "127.0.0.1"},
        ca_file=tls.ca_file,
    ).start()
    server.ensure_user("owner")
    try:
        yield server
    finally:
        server.stop()


def mint(server: AssayServer, token: str) -> httpx.Response:
    with server.client() as http:
        return http.post("/_/oidc/mint-token", json={"token": token})


def _register(server: AssayServer, provider: OIDCProvider, project: str, *issuer_args: str) -> None:
    server.admin("issuer", "add", "--issuer", provider.issuer, *issuer_args)
    server.admin(
        "publisher", "add", "github", "--project", project, "--issuer", provider.issuer, "--owner", "owner",
        "--repository", f"acme/{project}", "--workflow", "release.yml",
    )  # fmt: skip


def test_the_trap_sees_requests_to_other_hosts(trap: Trap) -> None:
    # The premise of this module: with the server's proxy settings, a request to a host other
    # than 127.0.0.1 reaches the trap (and nothing else).
    before = trap.connections
    proxy = f"http://127.0.0.1:{trap.port}"
    with pytest.raises(httpx.HTTPError), httpx.Client(proxy=proxy, timeout=5) as client:
        client.get("http://127.0.0.1.evil.example/jwks")
    assert trap.connections == before + 1


@pytest.mark.parametrize("url", LOOKALIKES)
def test_lookalike_loopback_jwks_url_is_refused_at_issuer_add(guarded: AssayServer, url: str) -> None:
    result = guarded.admin("issuer", "add", "--issuer", "https://ci.lookalike.example", "--jwks", url, check=False)
    assert result.returncode == 1, result.stdout
    assert "--jwks" in result.stderr
    assert "plain http only to 127.0.0.1" in result.stderr or "user name or password" in result.stderr
    assert "ci.lookalike.example" not in guarded.admin("issuer", "list").stdout


@pytest.mark.parametrize("url", ["http://127.0.0.1@evil.example", "http://127.0.0.1.evil.example"])
def test_lookalike_loopback_issuer_is_refused_at_issuer_add(guarded: AssayServer, url: str) -> None:
    result = guarded.admin("issuer", "add", "--issuer", url, check=False)
    assert result.returncode == 1, result.stdout
    # (A guard: the old spelling check already refused these; the parsed-URL rule must too.)
    listed = guarded.admin("issuer", "list").stdout.splitlines()
    assert not any(line.split("\t")[0].startswith(url) for line in listed), listed


def test_real_loopback_jwks_urls_are_accepted(guarded: AssayServer, idp: OIDCProvider) -> None:
    jwks = idp.jwks_uri.replace("127.0.0.1", "localhost")
    guarded.admin("issuer", "add", "--issuer", "https://ci.loopback.example", "--jwks", jwks)
    guarded.admin("issuer", "add", "--issuer", "https://ci.loopback6.example", "--jwks", "http://[::1]:1/jwks")
    guarded.admin("issuer", "add", "--issuer", "https://ci.tls.example", "--jwks", "https://keys.ci.example/jwks")


@pytest.mark.parametrize("url", LOOKALIKES)
def test_lookalike_jwks_uri_from_discovery_is_refused_before_any_connection(
    guarded: AssayServer, trap: Trap, url: str
) -> None:
    # The discovery document (fetched from the trusted issuer) names a jwks_uri on another host
    # that merely starts like a loopback address: refused, and no connection was attempted.
    with OIDCProvider() as provider:
        provider.discovery_overrides = {"jwks_uri": url}
        project = f"lookalike-{LOOKALIKES.index(url)}"
        _register(guarded, provider, project)
        before = trap.connections
        response = mint(guarded, provider.token(AUDIENCE, github_claims(f"acme/{project}")))
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["code"] == "invalid-token"
        assert "refusing to fetch keys" in error["description"], error
        assert "/.well-known/openid-configuration" in provider.requests_log  # discovery did happen
        time.sleep(0.3)  # a connection attempt would have been accepted by now
        assert trap.connections == before


def _error(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    error: dict[str, str] = response.json()["errors"][0]
    return error


def test_tokens_living_longer_than_the_issuers_maximum_are_refused(guarded: AssayServer) -> None:
    with OIDCProvider() as provider:
        _register(guarded, provider, "aged", "--max-token-age", "10m")
        assert f"{provider.issuer}\t" in guarded.admin("issuer", "list").stdout
        assert "max token age 600 s" in guarded.admin("issuer", "list").stdout
        claims = github_claims("acme/aged")
        assert mint(guarded, provider.token(AUDIENCE, claims, lifetime=600)).status_code == 200
        error = _error(mint(guarded, provider.token(AUDIENCE, claims, lifetime=900)))
        assert error["code"] == "invalid-token"
        assert "valid for 900 s (exp - iat)" in error["description"], error
        assert "600 s" in error["description"]
        # Changed in place (the issuer has a publisher, so it cannot be removed and re-added);
        # the running server applies it at the next exchange.
        guarded.admin("issuer", "set", provider.issuer, "--max-token-age", "20m")
        assert mint(guarded, provider.token(AUDIENCE, claims, lifetime=900)).status_code == 200


def test_the_default_maximum_token_age_is_two_hours(guarded: AssayServer) -> None:
    with OIDCProvider() as provider:
        _register(guarded, provider, "default-age")
        claims = github_claims("acme/default-age")
        assert mint(guarded, provider.token(AUDIENCE, claims, lifetime=7200)).status_code == 200
        # A token minted long ago for a long life still passes exp; its exp - iat does not.
        now = int(time.time())
        old = provider.token(AUDIENCE, claims, iat=now - 3600, nbf=now - 3600, exp=now + 3 * 3600)
        error = _error(mint(guarded, old))
        assert error["code"] == "invalid-token"
        assert "14400 s" in error["description"], error
        assert "7200 s" in error["description"], error


@pytest.mark.parametrize("value", ["0s", "banana", "5 hours"])
def test_a_bad_maximum_token_age_is_refused(guarded: AssayServer, value: str) -> None:
    args = ["issuer", "add", "--issuer", "https://ci.badage.example", "--max-token-age", value]
    result = guarded.admin(*args, check=False)
    assert result.returncode != 0
    assert "Invalid value for --max-token-age: invalid duration" in result.stderr, result.stderr


def test_a_long_unknown_kid_is_not_echoed(guarded: AssayServer) -> None:
    with OIDCProvider() as provider:
        _register(guarded, provider, "kids")
        claims = github_claims("acme/kids")
        long_kid = "k" * 65
        error = _error(mint(guarded, provider.token(AUDIENCE, claims, headers={"kid": long_kid})))
        assert error["code"] == "invalid-token"
        assert long_kid not in error["description"], error
        assert "65 characters, not shown" in error["description"]
        short_kid = "s" * 64  # up to 64 characters the kid helps whoever debugs the issuer
        error = _error(mint(guarded, provider.token(AUDIENCE, claims, headers={"kid": short_kid})))
        assert repr(short_kid) in error["description"], error


def test_an_iss_with_a_trailing_slash_is_the_same_issuer(guarded: AssayServer) -> None:
    with OIDCProvider() as provider:
        _register(guarded, provider, "slash")  # registered as http://127.0.0.1:PORT
        claims = github_claims("acme/slash")
        ok = mint(guarded, provider.token(AUDIENCE, claims, iss=provider.issuer + "/"))
        assert ok.status_code == 200, ok.text
        for other in (provider.issuer + "//", provider.issuer + ".evil", provider.issuer + "/x"):
            error = _error(mint(guarded, provider.token(AUDIENCE, claims, iss=other)))
            assert error["code"] == "invalid-payload"
            assert "unknown trusted publishing issuer" in error["description"], (other, error)


def test_an_issuer_whose_real_iss_ends_in_a_slash(guarded: AssayServer) -> None:
    # The provider's own iss (tokens and discovery document) is http://127.0.0.1:PORT/; the
    # admin types it as the provider documents it, with the slash.
    with OIDCProvider() as provider:
        real = provider.issuer + "/"
        provider.discovery_overrides = {"issuer": real}
        guarded.admin("issuer", "add", "--issuer", real)
        guarded.admin(
            "publisher", "add", "github", "--project", "real-slash", "--issuer", real, "--owner", "owner",
            "--repository", "acme/real-slash", "--workflow", "release.yml",
        )  # fmt: skip
        ok = mint(guarded, provider.token(AUDIENCE, github_claims("acme/real-slash"), iss=real))
        assert ok.status_code == 200, ok.text
