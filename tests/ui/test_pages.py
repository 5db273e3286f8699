"""The web pages over HTTP, on SQLite and PostgreSQL (search reads the stored metadata's JSON,
which the two backends query differently): URLs the JSON API advertises, search, the JSON API's
provenance_state, caching by serial, and what a page may load."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.dists import make_wheel, metadata_text
from tests.support.server import AssayServer
from tests.support.upload import upload


def _publish(server: AssayServer, tmp: Path, name: str, version: str, extra: str = "") -> Path:
    token = server.quick_token("uiuser")
    wheel = make_wheel(tmp, name, version, metadata=metadata_text(name, version, extra=extra).replace(
        "Summary: test", f"Summary: {extra.split('Summary-Word: ')[-1].strip() if 'Summary-Word' in extra else 'test'}"
    ))
    with server.client() as http:
        response = upload(http, wheel, token)
    assert response.status_code == 200, response.text
    return wheel


def _html(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_json_api_urls_are_the_pages(index: AssayServer, unique: str, tmp_path: Path) -> None:
    wheel = _publish(index, tmp_path, unique, "1.0")
    with index.client() as http:
        info = http.get(f"/pypi/{unique}/json").json()["info"]
        # Issue 15 item 3: the release's provenance over time, in the JSON API too.
        assert info["provenance_state"] == "none"
        assert http.get(f"/pypi/{unique}/1.0/json").json()["info"]["provenance_state"] == "none"
        project = _html(http.get(info["project_url"]))
        assert f"<h1>{unique} 1.0</h1>" in project
        assert info["package_url"] == info["project_url"]
        release = _html(http.get(info["release_url"]))
        assert wheel.name in release
        assert f'href="/project/{unique}/1.0/{wheel.name}/"' in release
        file_page = _html(http.get(f"/project/{unique}/1.0/{wheel.name}/"))
        assert "This file has no provenance" in file_page
        # PEP 503-style redirects to the canonical URL.
        moved = http.get(f"/project/{unique.upper()}/1.0", follow_redirects=False)
        assert moved.status_code == 301
        assert moved.headers["location"].endswith(f"/project/{unique}/1.0/")
        for missing in (f"/project/{unique}/9.9/", f"/project/{unique}/1.0/nope.whl/", "/project/no-such-thing/"):
            assert http.get(missing).status_code == 404


def test_search_finds_names_and_summaries(index: AssayServer, unique: str, tmp_path: Path) -> None:
    _publish(index, tmp_path, f"{unique}-alpha", "1.0", extra="Summary-Word: Frobnicates WIDGETS quickly")
    _publish(index, tmp_path, f"{unique}-beta", "1.0")
    with index.client() as http:
        by_name = _html(http.get("/search/", params={"q": f"{unique}_ALPHA"}))
        assert f"/project/{unique}-alpha/" in by_name
        assert f"/project/{unique}-beta/" not in by_name
        by_summary = _html(http.get("/search/", params={"q": "widgets QUICK"}))
        assert f"/project/{unique}-alpha/" in by_summary
        assert "Frobnicates WIDGETS quickly" in by_summary
        # LIKE's wildcards are searched for literally.
        wildcard = _html(http.get("/search/", params={"q": "%"}))
        assert f"/project/{unique}-alpha/" not in wildcard
        assert http.get("/search/", params={"q": "x" * 201}).status_code == 400


def test_pages_follow_changes(index: AssayServer, unique: str, tmp_path: Path) -> None:
    """Cached by the project's serial: a yank shows at once (the same hook as simple pages)."""
    _publish(index, tmp_path, unique, "1.0")
    with index.client() as http:
        before = _html(http.get(f"/project/{unique}/1.0/"))
        assert "This release is yanked" not in before
        _html(http.get(f"/project/{unique}/"))  # cached now
        index.admin("yank", unique, "1.0", "--reason", "broken <b>build</b>")
        after = _html(http.get(f"/project/{unique}/1.0/"))
        assert "This release is yanked" in after
        assert "broken &lt;b&gt;build&lt;/b&gt;" in after
        assert "yanked: broken &lt;b&gt;build&lt;/b&gt;" in _html(http.get(f"/project/{unique}/"))


def test_pages_load_only_their_style_sheet(index: AssayServer, unique: str, tmp_path: Path) -> None:
    with index.client() as http:
        for path in ("/", "/search/?q=x", "/account/login"):
            response = http.get(path)
            csp = response.headers["content-security-policy"]
            assert "default-src 'none'" in csp
            assert "style-src 'self'" in csp
            assert "script-src" not in csp  # default-src 'none' forbids every script
            assert "frame-ancestors 'none'" in csp
        home = _html(http.get("/"))
        # What the home page always showed, for tools and people setting up clients.
        assert f"{index.url}/simple/" in home
        assert f"{index.url}/legacy/" in home
        css = http.get("/_/static/assay.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")


def test_sign_in_and_out_on_both_backends(index: AssayServer, unique: str, tmp_path: Path) -> None:
    _publish(index, tmp_path, unique, "1.0")
    token = index.quick_token("uiuser")
    token_id = token.removeprefix("assay-").split("_", 1)[0]
    with index.client() as http:
        assert http.get("/account/").status_code == 401
        http.get("/account/login")
        csrf = http.cookies["assay_csrf"]
        refused = http.post("/account/login", data={"token": "assay-0123456789abcdef_nope", "csrf": csrf})
        assert refused.status_code == 403
        signed_in = http.post("/account/login", data={"token": token, "csrf": csrf})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/account/"
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain HTTP here; the TLS module checks Secure
        account = _html(http.get("/account/"))
        assert token_id in account
        assert token not in account
        assert f'href="/project/{unique}/"' in account  # a project they own
        assert "Signed in as" in _html(http.get(f"/project/{unique}/"))
        assert http.post("/account/logout", data={"csrf": csrf}).status_code == 303
        assert http.get("/account/").status_code == 401
    actions = [e["action"] for e in index.audit()]
    assert "web-sign-in" in actions
    assert "web-sign-in-refused" in actions


def test_a_quarantined_project_offers_no_files(index: AssayServer, unique: str, tmp_path: Path) -> None:
    """PEP 792: the status is shown, and a quarantined project's files are not linked."""
    wheel = _publish(index, tmp_path, unique, "1.0")
    index.admin("project", "status", unique, "quarantined", "--reason", "under <i>review</i>")
    with index.client() as http:
        project = _html(http.get(f"/project/{unique}/"))
        assert "This project is quarantined</strong> (PEP 792): under &lt;i&gt;review&lt;/i&gt;" in project
        release = _html(http.get(f"/project/{unique}/1.0/"))
        assert "No files are offered (the project is quarantined)" in release
        assert "/files/" not in release
        assert http.get(f"/project/{unique}/1.0/{wheel.name}/").status_code == 404
