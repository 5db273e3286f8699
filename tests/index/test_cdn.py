"""Issue 16, item 2: a CDN in front. Cache-Control with s-maxage and Surrogate-Key on simple
pages and project JSON; a purge by key for every project change, from the server and from the
admin commands, retried, never holding up the upload; the client address from X-Forwarded-For
of a trusted proxy in the audit log; and no start with several workers or beyond loopback
without --base-url or --allowed-host."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dists import make_wheel
from tests.support.purge_endpoint import PurgeEndpoint
from tests.support.server import AssayServer, client_environ
from tests.support.upload import upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module")
def purges() -> Iterator[PurgeEndpoint]:
    # The first two purges are refused (503): the server must retry them.
    with PurgeEndpoint(fail_first=2) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def server(purges: PurgeEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    env = {
        "ASSAY_CDN_PURGE_URL": purges.url,
        "ASSAY_CDN_PURGE_STYLE": "purge",
        "ASSAY_CDN_PURGE_TOKEN": "purge-secret",
    }
    args = ["--cdn-s-maxage", "600", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
    server = AssayServer(tmp_path_factory.mktemp("cdn"), args=args, env=env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(server: AssayServer) -> str:
    return server.quick_token("cdn-owner")


def test_pages_and_json_carry_s_maxage_and_surrogate_keys(server: AssayServer, token: str, tmp_path: Path) -> None:
    with server.client() as http:
        missing = http.get("/simple/cdn-headers/")
        assert missing.status_code == 404
        # A CDN may keep the 404: it is keyed, so the project's creation purges it.
        assert "project:default/cdn-headers" in missing.headers["surrogate-key"].split()
        assert upload(http, make_wheel(tmp_path, "cdn-headers", "1.0"), token).status_code == 200
        listing = http.get("/simple/")
        page = http.get("/simple/cdn-headers/", headers={"Accept": JSON_V1})
        project_json = http.get("/pypi/cdn-headers/json")
        release_json = http.get("/pypi/cdn-headers/1.0/json")
        file_url = page.json()["files"][0]["url"]
        file = http.get(httpx_join(server, "/simple/cdn-headers/", file_url))
    for r in (listing, page, project_json, release_json):
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=0, s-maxage=600"
    assert set(listing.headers["surrogate-key"].split()) == {"projects:default", "index:default"}
    for r in (page, project_json, release_json):
        assert set(r.headers["surrogate-key"].split()) == {"project:default/cdn-headers", "index:default"}
    # Files never change: cached for a year by anyone, no key needed.
    assert file.headers["cache-control"] == "public, max-age=31536000, immutable"


def httpx_join(server: AssayServer, page: str, url: str) -> str:
    from urllib.parse import urljoin

    return urljoin(server.url + page, url)


def test_every_change_is_purged_by_key_retried_in_the_background(
    server: AssayServer, purges: PurgeEndpoint, token: str, tmp_path: Path
) -> None:
    with server.client() as http:
        # A new project: its key and the project list's.
        assert upload(http, make_wheel(tmp_path, "cdn-purged", "1.0"), token).status_code == 200
        got = purges.wait_for({"project:default/cdn-purged", "projects:default"})
        assert {"project:default/cdn-purged", "projects:default"} <= got
        # The first two attempts were refused (503) and retried: nothing was lost.
        refused = [p for p in purges.received if p.status == 503]
        assert len(refused) == 2
        sent = purges.received[-1]
        assert sent.method == "PURGE"
        assert sent.path == "/purge"
        assert sent.headers["authorization"] == "Bearer purge-secret"
        purges.clear()
        # Another release of it: the project's key only (the list did not change).
        assert upload(http, make_wheel(tmp_path, "cdn-purged", "2.0"), token).status_code == 200
        assert "project:default/cdn-purged" in purges.wait_for({"project:default/cdn-purged"})
        assert "projects:default" not in purges.accepted_keys()
    purges.clear()
    # A change made by an admin command (its own process) is purged too.
    server.admin("yank", "cdn-purged", "2.0", "--reason", "broken")
    assert "project:default/cdn-purged" in purges.wait_for({"project:default/cdn-purged"})


def test_a_cdn_that_is_down_never_fails_an_upload(tmp_path: Path) -> None:
    with PurgeEndpoint() as gone:
        url = gone.url
    # Nothing listens there any more: every purge fails; the upload does not wait for them.
    server = AssayServer(tmp_path / "data", env={"ASSAY_CDN_PURGE_URL": url}).start()
    try:
        token = server.quick_token("u")
        with server.client() as http:
            assert upload(http, make_wheel(tmp_path, "cdn-down", "1.0"), token).status_code == 200
            assert http.get("/simple/cdn-down/").status_code == 200
        server.stop()
        assert any("CDN purge of" in line and "retrying" in line for line in server.log), server.log[-20:]
    finally:
        server.stop()


def test_the_audit_log_records_the_client_behind_a_trusted_proxy(server: AssayServer, tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    with server.client(headers=forwarded) as http:
        bad = upload(http, make_wheel(tmp_path, "cdn-audit", "1.0"), "assay-not-a-token")
    assert bad.status_code == 403, bad.text
    events = server.audit()
    assert events[-1]["remote_addr"] == "203.0.113.7", events[-1]
    # And only a trusted proxy is believed: the same header straight from a client elsewhere
    # would be ignored (uvicorn's forwarded_allow_ips; here the proxy is 127.0.0.1).


@pytest.mark.parametrize(
    ("args", "where"),
    [(["--workers", "2"], "with 2 workers"), (["--host", "0.0.0.0"], "listening on 0.0.0.0")],  # noqa: S104
)
def test_refuses_to_build_urls_from_host_headers_with_workers_or_beyond_loopback(
    tmp_path: Path, args: list[str], where: str
) -> None:
    cmd = [sys.executable, "-m", "assay", "serve", "--data-dir", str(tmp_path / "d"), "--port", "0", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=client_environ(), timeout=60)
    assert result.returncode != 0
    assert f"refusing to start {where} without --base-url or --allowed-host" in result.stderr
