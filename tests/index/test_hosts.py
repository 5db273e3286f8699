"""Issue 10, item 8: absolute URLs built from a forged Host header.

Without ``--base-url`` the index builds provenance URLs, the home page's links and PEP 807
discovery answers from the Host header; ``--allowed-host`` makes it answer only the names it
is known by (400 "Host not allowed" otherwise), and beyond loopback it answers only the
machine's own names unless told more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assay.app import create_app
from assay.config import load_settings
from assay.web.hosts import startup_warning
from tests.index.helpers import assert_refused
from tests.support.server import AssayServer
from tests.support.upload import raw_http

DISCOVER = "/.well-known/pytp?discover=%2Flegacy%2F"


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    args = ["--allowed-host", "127.0.0.1", "--allowed-host", "packages.example", "--allowed-host", ".corp.example"]
    server = AssayServer(tmp_path_factory.mktemp("hosts"), args=args).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "packages.example.evil.example", "corp.example.net"]
)
@pytest.mark.parametrize("path", ["/", DISCOVER, "/simple/", "/pypi/anything/json"])
def test_a_host_not_listed_is_refused(listed: AssayServer, host: str, path: str) -> None:
    with listed.client() as http:
        response = http.get(path, headers={"Host": host})
    assert_refused(response, 400, "Host not allowed", repr(host.split(":")[0]))
    assert "evil.example" not in response.headers.get("location", "")


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("packages.example", "http://packages.example"),
        ("PACKAGES.example:8443", "http://PACKAGES.example:8443"),
        ("corp.example", "http://corp.example"),
        ("eu.pkgs.corp.example", "http://eu.pkgs.corp.example"),
    ],
)
def test_a_listed_host_is_answered_and_names_the_endpoints(listed: AssayServer, host: str, base: str) -> None:
    with listed.client() as http:
        response = http.get(DISCOVER, headers={"Host": host})
    assert response.status_code == 200, response.text
    assert response.json()["token-mint-endpoint"] == base + "/_/oidc/mint-token"
    assert response.headers["cache-control"] == "no-store"


def test_more_than_one_host_header_is_refused(listed: AssayServer) -> None:
    # httpx will not send two; which one would build the URLs is not for the index to guess.
    request = b"GET / HTTP/1.1\r\nHost: packages.example\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    status, reason, body = raw_http(listed.url, request)
    assert status == 400
    assert "more than one Host header" in reason
    assert b"more than one Host header" in body


def test_without_a_list_loopback_answers_any_host_but_discovery_is_never_stored(sqlite_index: AssayServer) -> None:
    # The default on loopback is unchanged (a reverse proxy on the machine passes its Host);
    # what it answers is never cached for another client.
    with sqlite_index.client() as http:
        for key in ("%2Flegacy%2F", "%2Fnowhere%2F"):
            response = http.get(f"/.well-known/pytp?discover={key}", headers={"Host": "proxy.example"})
            assert response.headers["cache-control"] == "no-store", key
    assert response.status_code == 404


def _get_all(settings_overrides: dict[str, object], tmp_path: Path, hosts: list[str]) -> list[httpx.Response]:
    """Requests to the application as a server bound to 0.0.0.0 would pass them, arriving on
    the address 10.9.8.7 (the test never listens beyond loopback: rule 2 of the house)."""
    app = create_app(load_settings({"data_dir": str(tmp_path), **settings_overrides}, environ={}))

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://10.9.8.7:8000") as http:
            return [await http.get(DISCOVER, headers={"Host": host}) for host in hosts]

    return asyncio.run(run())


def test_beyond_loopback_without_base_url_only_the_machines_own_names_are_answered(tmp_path: Path) -> None:
    forged, own_address, local = _get_all(
        {"host": "0.0.0.0"}, tmp_path, ["evil.example", "10.9.8.7:8000", "localhost:8000"]  # noqa: S104
    )
    # In-process, so no reason phrase (uvicorn writes it): the body says it.
    assert forged.status_code == 400
    assert "Host not allowed: 'evil.example'" in forged.text
    assert "--allowed-host" in forged.text
    assert own_address.json()["token-mint-endpoint"] == "http://10.9.8.7:8000/_/oidc/mint-token"
    assert local.json()["token-mint-endpoint"] == "http://localhost:8000/_/oidc/mint-token"
    warning = startup_warning(load_settings({"host": "0.0.0.0"}, environ={}))  # noqa: S104
    assert warning is not None
    assert "--base-url" in warning
    assert "--allowed-host" in warning


def test_beyond_loopback_with_base_url_any_host_is_answered_with_the_base_url(tmp_path: Path) -> None:
    overrides = {"host": "0.0.0.0", "base_url": "https://packages.example"}  # noqa: S104
    (response,) = _get_all(overrides, tmp_path, ["evil.example"])
    assert response.json()["token-mint-endpoint"] == "https://packages.example/_/oidc/mint-token"
    assert startup_warning(load_settings(overrides, environ={})) is None
