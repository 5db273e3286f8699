"""The pages in a real browser on a private index over TLS, with the local Sigstore authority's
trust root: nothing is shown signed out, sign-in with an API token (the session cookie's
attributes), the owner's page, the "provenance changed" warning, CSRF refusals, sign-out, and a
session that ends with its token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.attestations.conftest import AUDIENCE, GITHUB_ISSUER, mint
from tests.support.dists import make_wheel
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.server import AssayServer
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.tls import TLS, tls_server
from tests.support.upload import basic, upload
from tests.ui.conftest import Browsing
from tests.ui.test_index_pages import assert_prefixed

PROJECT = "changing"
REPO = "acme/widget"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tls: TLS, idp: OIDCProvider) -> Iterator[AssayServer]:
    """``changing`` 1.0 attested by REPO's release.yml, 2.0 by its nightly.yml (changed)."""
    tmp = tmp_path_factory.mktemp("private-ui")
    sigstore = LocalSigstore(tmp / "sigstore")
    srv = tls_server(
        tmp / "data", tls, args=("--private", "--sigstore-trust-root", str(sigstore.trusted_root_path))
    ).start()
    try:
        srv.admin("issuer", "add", "--issuer", GITHUB_ISSUER, "--jwks", str(idp.jwks_path))
        srv.ensure_user("owner")
        for version, workflow in (("1.0", "release.yml"), ("2.0", "nightly.yml")):
            srv.admin(
                "publisher", "add", "github", "--project", PROJECT, "--owner", "owner",
                "--repository", REPO, "--workflow", workflow,
            )
            wheel = make_wheel(tmp, PROJECT, version)
            attestation = sigstore.attest_file(wheel, CertIdentity.github(REPO, workflow, ref=f"refs/tags/v{version}"))
            token = mint(srv, idp.token(AUDIENCE, github_claims(REPO, workflow), iss=GITHUB_ISSUER))
            with srv.client() as http:
                response = upload(http, wheel, token, attestations=f"[{attestation.model_dump_json()}]")
            assert response.status_code == 200, response.text
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def owner_token(server: AssayServer) -> str:
    return server.token("owner")


def _token_id(token: str) -> str:
    return token.removeprefix("assay-").split("_", 1)[0]


def test_signed_out_sees_nothing(server: AssayServer, browsing: Browsing) -> None:
    browsing.context.clear_cookies()
    page = browsing.page()
    page.goto(server.url + "/")
    assert "This index is private" in page.locator("main").inner_text()
    assert page.get_by_role("search").count() == 0
    for path in (f"/project/{PROJECT}/", f"/project/{PROJECT}/1.0/", f"/search/?q={PROJECT}"):
        response = page.goto(server.url + path)
        assert response is not None
        assert response.status == 401
        assert PROJECT not in page.content()
        assert page.get_by_label("API token").count() == 1
    browsing.screenshot(page, "private-signed-out")
    assert browsing.axe(server.url + f"/project/{PROJECT}/") == []


def test_a_form_from_another_site_is_refused(server: AssayServer, browsing: Browsing, owner_token: str) -> None:
    """CSRF: a page elsewhere (here, about:blank, whose Origin is "null") posting the sign-in
    form with a valid token is refused, and no session starts."""
    browsing.context.clear_cookies()
    page = browsing.page()
    page.goto(server.url + "/account/login")  # this browser now has the CSRF cookie, too
    page.goto("about:blank")
    page.set_content(
        f'<form method="post" action="{server.url}/account/login"><input name="token" value="{owner_token}">'
        '<input name="csrf" value="guessed"><button>go</button></form>'
    )
    with page.expect_navigation():
        page.get_by_role("button", name="go").click()
    assert "The form was refused (CSRF protection)" in page.locator("main").inner_text()
    browsing.screenshot(page, "csrf-refused")
    assert [c for c in browsing.context.cookies() if c["name"] == "assay_session"] == []
    # The same without a browser: no CSRF cookie, a field that does not match it, another Origin.
    with server.client() as http:
        form = {"token": owner_token, "csrf": "x" * 43}
        assert http.post("/account/login", data=form).status_code == 403
        http.cookies.set("assay_csrf", "y" * 43)
        refused = http.post("/account/login", data=form)
        assert refused.status_code == 403
        assert "does not match" in refused.text
        form["csrf"] = "y" * 43
        foreign = http.post("/account/login", data=form, headers={"origin": "https://elsewhere.invalid"})
        assert foreign.status_code == 403
        assert "another site" in foreign.text
        assert "set-cookie" not in foreign.headers
        # Sign-out is a form too.
        http.cookies.clear()
        assert http.post("/account/logout", data={"csrf": "z" * 43}).status_code == 403


def test_sign_in_see_the_owners_page_and_the_changed_warning_then_sign_out(
    server: AssayServer, browsing: Browsing, owner_token: str
) -> None:
    browsing.context.clear_cookies()
    page = browsing.page()
    page.goto(server.url + "/account/login")
    browsing.screenshot(page, "sign-in")
    assert browsing.axe(page.url) == []
    page.get_by_label("API token").fill(owner_token)
    page.get_by_role("button", name="Sign in").click()
    assert page.url == server.url + "/account/", page.locator("main").inner_text()
    account = page.locator("main").inner_text()
    assert "Signed in with token" in account
    assert _token_id(owner_token) in account
    assert owner_token not in page.content()  # ids only, never a secret
    assert "nightly.yml" in account  # the project's publishers
    assert "release.yml" in account
    browsing.screenshot(page, "account")
    assert browsing.axe(page.url) == []
    (cookie,) = [c for c in browsing.context.cookies() if c["name"] == "assay_session"]
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True  # served over TLS
    assert cookie["sameSite"] == "Strict"
    assert not re.search(re.escape(cookie["value"]), owner_token)

    page.goto(f"{server.url}/project/{PROJECT}/")
    warning = page.get_by_role("alert").inner_text()
    assert (
        "Provenance changed: this release is attested by GitHub: repository acme/widget, workflow nightly.yml, "
        "but the previous attested release, 1.0, was attested by GitHub: repository acme/widget, workflow release.yml"
    ) in warning
    browsing.screenshot(page, "project-changed")
    assert browsing.axe(page.url) == []
    page.goto(f"{server.url}/project/{PROJECT}/2.0/")
    assert "Provenance changed" in page.get_by_role("alert").inner_text()
    page.goto(f"{server.url}/project/{PROJECT}/1.0/")
    assert page.get_by_role("alert").count() == 0
    with server.client(headers=basic(owner_token)) as http:
        assert http.get(f"/pypi/{PROJECT}/json").json()["info"]["provenance_state"] == "changed"
        assert http.get(f"/pypi/{PROJECT}/1.0/json").json()["info"]["provenance_state"] == "full"

    page.get_by_role("button", name="Sign out").click()
    assert page.url == server.url + "/"
    assert [c for c in browsing.context.cookies() if c["name"] == "assay_session"] == []
    response = page.goto(f"{server.url}/project/{PROJECT}/")
    assert response is not None
    assert response.status == 401
    # The session is gone on the server too: the old cookie no longer signs anyone in.
    with server.client(cookies={"assay_session": cookie["value"]}) as http:
        assert http.get(f"/project/{PROJECT}/").status_code == 401


def _sign_in(http: httpx.Client, token: str) -> None:
    http.get("/account/login")
    response = http.post("/account/login", data={"token": token, "csrf": http.cookies["assay_csrf"]})
    assert response.status_code == 303, response.text


def test_a_session_ends_with_its_token(server: AssayServer) -> None:
    token = server.token("owner")
    with server.client() as http:
        _sign_in(http, token)
        assert http.get(f"/project/{PROJECT}/").status_code == 200
        server.admin("token", "revoke", _token_id(token))
        assert http.get(f"/project/{PROJECT}/").status_code == 401
        # A revoked token cannot sign in again either.
        http.get("/account/login")
        again = http.post("/account/login", data={"token": token, "csrf": http.cookies["assay_csrf"]})
        assert again.status_code == 403
        assert "revoked" in again.text


def test_a_publishers_minted_token_does_not_sign_in(server: AssayServer, idp: OIDCProvider) -> None:
    minted = mint(server, idp.token(AUDIENCE, github_claims(REPO, "release.yml"), iss=GITHUB_ISSUER))
    with server.client() as http:
        http.get("/account/login")
        response = http.post("/account/login", data={"token": minted, "csrf": http.cookies["assay_csrf"]})
    assert response.status_code == 403
    assert "Only a person&#39;s API token can sign in" in response.text


CREW = "crew"
CREW_PROJECT = "crewthing"
CREW_STAGED = "crewstaged"


@pytest.fixture(scope="module")
def crew_token(server: AssayServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A private named index CREW: CREW_PROJECT published by ``owner`` with a token of CREW, and
    CREW_STAGED, whose 1.0 waits in a stage."""
    tmp = tmp_path_factory.mktemp("crew")
    server.cli("index", "create", CREW, "--private")
    token = server.cli("token", "create", "--user", "owner", "--index", CREW).stdout.strip()
    server.cli("project", "create", CREW_STAGED, "--owner", "owner", "--index", CREW)
    server.cli("project", "set", CREW_STAGED, "--releases", "staged", "--index", CREW)
    with server.client(index=CREW) as http:
        for name in (CREW_PROJECT, CREW_STAGED):
            response = upload(http, make_wheel(tmp, name, "1.0"), token)
            assert response.status_code == 200, response.text
    return token


def test_a_private_named_index_in_the_browser(
    server: AssayServer, browsing: Browsing, owner_token: str, crew_token: str
) -> None:
    """Signed in on the default index is signed out on CREW (a session is one index's); signed
    in on CREW: its project, its open stage on the owner's page; signed out again: nothing."""
    browsing.context.clear_cookies()
    page = browsing.page()
    page.goto(server.url + "/account/login")
    page.get_by_label("API token").fill(owner_token)
    page.get_by_role("button", name="Sign in").click()
    assert page.url == server.url + "/account/"
    for path in (f"/{CREW}/project/{CREW_PROJECT}/", f"/{CREW}/search/?q=crew", f"/{CREW}/account/"):
        response = page.goto(server.url + path)
        assert response is not None
        assert response.status == 401
        assert CREW_PROJECT not in page.content()
        assert CREW_STAGED not in page.content()
    browsing.screenshot(page, "crew-other-index-session")
    assert browsing.axe(page.url) == []
    # The default index's token does not sign in on CREW.
    page.goto(f"{server.url}/{CREW}/account/login")
    page.get_by_label("API token").fill(owner_token)
    page.get_by_role("button", name="Sign in").click()
    assert "not valid on the index 'crew'" in page.get_by_role("alert").inner_text()

    page.get_by_label("API token").fill(crew_token)
    page.get_by_role("button", name="Sign in").click()
    assert page.url == f"{server.url}/{CREW}/account/", page.locator("main").inner_text()
    account = page.locator("main").inner_text()
    assert f"{CREW_STAGED} 1.0" in account
    assert f"{server.url}/{CREW}/stage/" in account
    assert "approving needs an owner's second factor" in account
    assert_prefixed(page.content(), f"/{CREW}")
    browsing.screenshot(page, "crew-account-stages")
    assert browsing.axe(page.url) == []
    cookies = {c["name"]: c for c in browsing.context.cookies()}
    assert cookies["assay_session_crew"]["path"] == f"/{CREW}/"
    assert cookies["assay_session_crew"]["httpOnly"] is True
    assert "assay_session" in cookies  # the default index's session is still there, its own

    page.get_by_role("link", name="assay · crew").click()
    assert page.url == f"{server.url}/{CREW}/"
    page.get_by_label("Search projects by name or summary").fill("crew")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=CREW_PROJECT).click()
    assert page.url == f"{server.url}/{CREW}/project/{CREW_PROJECT}/"
    assert_prefixed(page.content(), f"/{CREW}")
    browsing.screenshot(page, "crew-project")
    assert browsing.axe(page.url) == []
    page.get_by_role("link", name="files of 1.0").click()
    assert page.url == f"{server.url}/{CREW}/project/{CREW_PROJECT}/1.0/"
    assert_prefixed(page.content(), f"/{CREW}")
    assert browsing.axe(page.url) == []

    page.get_by_role("button", name="Sign out").click()
    assert page.url == f"{server.url}/{CREW}/"
    assert "This index is private" in page.locator("main").inner_text()
    browsing.screenshot(page, "crew-signed-out")
    assert browsing.axe(page.url) == []
    response = page.goto(f"{server.url}/{CREW}/project/{CREW_PROJECT}/")
    assert response is not None
    assert response.status == 401
    assert CREW_PROJECT not in page.content()
    # Signing out of CREW left the default index's session alone.
    response = page.goto(server.url + "/account/")
    assert response is not None
    assert response.status == 200
