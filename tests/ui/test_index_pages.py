"""The pages of named indexes over HTTP, on SQLite and PostgreSQL (issue 15, "per index"): every
page under ``/<name>/`` with every link carrying the prefix, the page cache per index, the JSON
API's page URLs, sessions that are one index's, a private named index that shows nothing to
anyone not signed in on it, a mirror index's pages, and the open stages an owner sees."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.support.dists import make_wheel, metadata_text
from tests.support.server import AssayServer
from tests.support.upload import basic, upload

TEAM = "team"
PRIV = "priv"
MIRROR = "mir"
#: The mirror's upstream, with a password in it that no page may show (.invalid: RFC 6761).
UPSTREAM = "https://reader:s3cret@upstream.invalid/simple/"
#: A project of the same name on the default index and on TEAM, with different summaries.
SHARED = "shared-name"


class _Links(HTMLParser):
    """Every href, action and src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("href", "action", "src") and v is not None]


def links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.urls


def assert_prefixed(html: str, prefix: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """Every site-absolute link of ``html`` is under ``prefix`` (or is the site's style sheet, or
    one of ``allowed``); returns the links."""
    found = links(html)
    for url in found:
        if url.startswith("/") and url != "/_/static/assay.css" and url not in allowed:
            assert url.startswith(prefix + "/"), f"{url!r} does not carry the index's prefix {prefix!r}"
        assert not url.startswith("//")
    return found


def _html(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _token(server: AssayServer, user: str, index: str) -> str:
    server.quick_user(user)
    return server.cli("token", "create", "--user", user, "--index", index).stdout.strip()


def _publish(
    server: AssayServer, tmp: Path, index: str | None, token: str, name: str, version: str, summary: str
) -> Path:
    meta = metadata_text(name, version).replace("Summary: test", f"Summary: {summary}")
    wheel = make_wheel(tmp, name, version, metadata=meta)
    with server.client(index=index) as http:
        response = upload(http, wheel, token)
    assert response.status_code == 200, response.text
    return wheel


@dataclass
class Setup:
    server: AssayServer
    team_token: str
    priv_token: str
    default_token: str
    team_wheel: Path
    priv_project: str


@pytest.fixture(scope="module")
def setup(index: AssayServer, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """TEAM (public) and PRIV (private) hosted indexes and MIRROR, a mirror; SHARED on the
    default index and on TEAM; a project on PRIV."""
    tmp = tmp_path_factory.mktemp("index-pages")
    index.cli("index", "create", TEAM, "--description", "The <team>'s packages")
    index.cli("index", "create", PRIV, "--private")
    index.cli("index", "create", MIRROR, "--mirror", UPSTREAM)
    default_token = index.quick_token("idx-default")
    team_token = _token(index, "idx-team", TEAM)
    priv_token = _token(index, "idx-priv", PRIV)
    _publish(index, tmp, None, default_token, SHARED, "1.0", "the default one")
    team_wheel = _publish(index, tmp, TEAM, team_token, SHARED, "2.0", "the team one")
    _publish(index, tmp, PRIV, priv_token, "secret-thing", "1.0", "hush")
    return Setup(index, team_token, priv_token, default_token, team_wheel, "secret-thing")


def _sign_in(http: httpx.Client, prefix: str, token: str) -> httpx.Response:
    http.get(f"{prefix}/account/login")
    return http.post(f"{prefix}/account/login", data={"token": token, "csrf": http.cookies["assay_csrf"]})


def test_a_named_indexs_pages_and_their_links(setup: Setup) -> None:
    server, wheel = setup.server, setup.team_wheel
    with server.client() as http:
        home = _html(http.get(f"/{TEAM}/"))
        assert "Index team" in home
        assert "The &lt;team&gt;&#39;s packages" in home
        assert f"{server.url}/{TEAM}/simple/" in home
        assert f"{server.url}/{TEAM}/legacy/" in home
        assert f'action="/{TEAM}/search/"' in home
        assert_prefixed(home, f"/{TEAM}", allowed=("/",))  # "/": the server's default index
        assert http.get(f"/{TEAM}", follow_redirects=False).headers["location"].endswith(f"/{TEAM}/")
        found = _html(http.get(f"/{TEAM}/search/", params={"q": "team one"}))
        assert f'href="/{TEAM}/project/{SHARED}/"' in found
        assert_prefixed(found, f"/{TEAM}")
        # The default index's search does not find TEAM's summary, nor TEAM's the default's.
        assert f"/project/{SHARED}/" not in _html(http.get("/search/", params={"q": "team one"}))
        assert f"/project/{SHARED}/" not in _html(http.get(f"/{TEAM}/search/", params={"q": "default one"}))

        # The page cache is per index: the same name (and each index's first page cached).
        for _ in range(2):
            default_page = _html(http.get(f"/project/{SHARED}/"))
            team_page = _html(http.get(f"/{TEAM}/project/{SHARED}/"))
            assert "the default one" in default_page
            assert "the team one" not in default_page
            assert "the team one" in team_page
            assert "the default one" not in team_page
        assert_prefixed(team_page, f"/{TEAM}")
        assert f'href="/{TEAM}/project/{SHARED}/2.0/"' in team_page
        assert f'href="/project/{SHARED}/1.0/"' in default_page

        release = _html(http.get(f"/{TEAM}/project/{SHARED}/2.0/"))
        urls = assert_prefixed(release, f"/{TEAM}")
        assert f"/{TEAM}/project/{SHARED}/2.0/{wheel.name}/" in urls
        # The download and PEP 658 links are the index's own, and answer.
        (download,) = [u for u in urls if u.endswith(wheel.name) and "/files/" in u]
        assert download.startswith(f"/{TEAM}/files/")
        assert http.get(download).content == wheel.read_bytes()
        assert http.get(download + ".metadata").status_code == 200
        file_page = _html(http.get(f"/{TEAM}/project/{SHARED}/2.0/{wheel.name}/"))
        assert_prefixed(file_page, f"/{TEAM}")
        assert f'href="{download}.tlog-proof"' in file_page
        assert http.get(download + ".tlog-proof").status_code == 200

        # The default index has no 2.0, TEAM no 1.0; canonical redirects keep the prefix.
        assert http.get(f"/project/{SHARED}/2.0/").status_code == 404
        assert http.get(f"/{TEAM}/project/{SHARED}/1.0/").status_code == 404
        moved = http.get(f"/{TEAM}/project/Shared_Name/2.0", follow_redirects=False)
        assert moved.status_code == 301
        assert moved.headers["location"] == f"{server.url}/{TEAM}/project/{SHARED}/2.0/"
        login = _html(http.get(f"/{TEAM}/account/login"))
        assert f'action="/{TEAM}/account/login"' in login
        assert_prefixed(login, f"/{TEAM}")
        assert http.get("/nosuchindex/").status_code == 404


def test_the_json_apis_page_urls_are_the_named_indexs(setup: Setup) -> None:
    """Item 3: ``package_url``, ``project_url`` and ``release_url`` of TEAM's JSON API are TEAM's
    pages, and they answer."""
    with setup.server.client() as http:
        info = http.get(f"/{TEAM}/pypi/{SHARED}/json").json()["info"]
        assert info["project_url"] == f"{setup.server.url}/{TEAM}/project/{SHARED}/"
        assert info["package_url"] == info["project_url"]
        assert info["release_url"] == f"{setup.server.url}/{TEAM}/project/{SHARED}/2.0/"
        assert "the team one" in _html(http.get(info["project_url"]))
        assert setup.team_wheel.name in _html(http.get(info["release_url"]))
        one = http.get(f"/{TEAM}/pypi/{SHARED}/2.0/json").json()["info"]
        assert one["release_url"] == info["release_url"]


def test_a_session_is_one_indexs(setup: Setup) -> None:
    server = setup.server
    with server.client() as http:
        # A token of the default index does not sign in on TEAM (nor TEAM's on the default).
        refused = _sign_in(http, f"/{TEAM}", setup.default_token)
        assert refused.status_code == 403
        assert "not valid on the index &#39;team&#39;" in refused.text
        assert _sign_in(http, "", setup.team_token).status_code == 403
        signed_in = _sign_in(http, f"/{TEAM}", setup.team_token)
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == f"/{TEAM}/account/"
        cookie = signed_in.headers["set-cookie"]
        assert cookie.startswith("assay_session_team=")
        assert "Path=/team/" in cookie
        secret = http.cookies["assay_session_team"]
        account = _html(http.get(f"/{TEAM}/account/"))
        assert_prefixed(account, f"/{TEAM}")
        assert f'href="/{TEAM}/project/{SHARED}/"' in account
        assert f'action="/{TEAM}/account/logout"' in account
        assert "Signed in as" in _html(http.get(f"/{TEAM}/project/{SHARED}/"))
        # Not signed in on the default index, nor on PRIV.
        assert http.get("/account/").status_code == 401
        assert "Signed in as" not in _html(http.get(f"/project/{SHARED}/"))
        assert http.get(f"/{PRIV}/account/").status_code == 401
    # TEAM's session secret under another index's cookie name signs in nowhere else: the session
    # row is TEAM's.
    for name, path in (("assay_session", "/account/"), ("assay_session_priv", f"/{PRIV}/account/")):
        with server.client(cookies={name: secret}) as other:
            assert other.get(path).status_code == 401
    # Sign-out on TEAM ends TEAM's session only.
    with server.client() as http:
        assert _sign_in(http, "", setup.default_token).status_code == 303
        assert _sign_in(http, f"/{TEAM}", setup.team_token).status_code == 303
        out = http.post(f"/{TEAM}/account/logout", data={"csrf": http.cookies["assay_csrf"]})
        assert out.status_code == 303
        assert out.headers["location"] == f"/{TEAM}/"
        assert http.get(f"/{TEAM}/account/").status_code == 401
        assert http.get("/account/").status_code == 200


def test_a_private_named_index_shows_nothing_to_others(setup: Setup) -> None:
    server, name = setup.server, setup.priv_project
    with server.client() as http:
        home = _html(http.get(f"/{PRIV}/"))
        assert "This index is private" in home
        assert 'role="search"' not in home
        assert_prefixed(home, f"/{PRIV}", allowed=("/",))
        for path in (f"/{PRIV}/project/{name}/", f"/{PRIV}/project/{name}/1.0/", f"/{PRIV}/search/?q=secret"):
            denied = _html(http.get(path), 401)
            assert name not in denied
            assert "hush" not in denied
            assert f'action="/{PRIV}/account/login"' in denied
        # Signed in on another index is signed out here.
        assert _sign_in(http, f"/{TEAM}", setup.team_token).status_code == 303
        assert name not in _html(http.get(f"/{PRIV}/search/?q=secret"), 401)
        # A token of PRIV in the Authorization header (scripts) reads; another index's does not.
        assert name in _html(http.get(f"/{PRIV}/project/{name}/", headers=basic(setup.priv_token)))
        assert http.get(f"/{PRIV}/project/{name}/", headers=basic(setup.team_token)).status_code == 401
        # Signed in on PRIV: all of it.
        assert _sign_in(http, f"/{PRIV}", setup.priv_token).status_code == 303
        page = _html(http.get(f"/{PRIV}/project/{name}/"))
        assert "hush" in page
        assert_prefixed(page, f"/{PRIV}")
        assert f"/{PRIV}/project/{name}/" in _html(http.get(f"/{PRIV}/search/?q=secret"))


def test_a_mirror_index_says_what_it_is(setup: Setup) -> None:
    with setup.server.client() as http:
        home = _html(http.get(f"/{MIRROR}/"))
        assert "mirrors <code>https://upstream.invalid/simple/</code>" in home
        assert "s3cret" not in home
        assert f"{setup.server.url}/{MIRROR}/simple/" in home
        assert "/legacy/" not in home  # a mirror takes no uploads
        assert 'role="search"' not in home
        assert_prefixed(home, f"/{MIRROR}", allowed=("/",))
        for path in (f"/{MIRROR}/project/anything/", f"/{MIRROR}/search/?q=x"):
            page = _html(http.get(path), 404)
            assert "have no pages or search here" in page
            assert "s3cret" not in page


def test_open_stages_on_the_owners_page(setup: Setup, tmp_path: Path) -> None:
    """Issue 14's stages on the account page of their owners (read-only), not of others."""
    server = setup.server
    project = "staged-thing"
    owner, second, stranger = "stage-owner", "stage-second", "stage-stranger"
    for user in (owner, second, stranger):
        server.quick_user(user)
    server.cli("project", "create", project, "--owner", owner, "--index", TEAM)
    server.cli("project", "role", project, second, "owner", "--index", TEAM)
    server.cli("project", "set", project, "--releases", "staged", "--approvals", "2", "--index", TEAM)
    totp = pyotp.parse_uri(server.cli("user", "totp", "enable", second).stdout.strip().splitlines()[0])
    assert isinstance(totp, pyotp.TOTP)
    owner_token, second_token = _token(server, owner, TEAM), _token(server, second, TEAM)
    wheel = _publish(server, tmp_path, TEAM, owner_token, project, "1.0", "staged")
    with server.client(index=TEAM) as http:
        stage = http.get(f"/_/releases/{project}/1.0/", headers=basic(owner_token)).json()
        approved = http.post(
            f"/_/releases/{project}/1.0/approve", headers=basic(second_token), json={"totp": totp.now()}
        )
        assert approved.status_code == 200, approved.text
    with server.client() as http:
        assert _sign_in(http, f"/{TEAM}", owner_token).status_code == 303
        account = _html(http.get(f"/{TEAM}/account/"))
        assert stage["stage"] in account
        assert f"{server.url}/{TEAM}/stage/{stage['stage']}/simple/" in account
        assert wheel.name in account
        assert stage["files"][0]["digests"]["sha256"] in account
        assert re.search(r"1 of 2\s*: stage-second", account)
        assert "read-only" in account
        assert "assay release approve" in account
        assert "<form" not in account.split("Open stages", 1)[1]  # no approving here
    # Someone without a role on the project sees no stage; nor does the default index's page.
    with server.client() as http:
        assert _sign_in(http, f"/{TEAM}", _token(server, stranger, TEAM)).status_code == 303
        account = _html(http.get(f"/{TEAM}/account/"))
        assert stage["stage"] not in account
        assert "No open stages" in account
