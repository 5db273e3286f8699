"""The pages in a real browser on a public index under sigstore's production root: search, the
project, release and file pages, the provenance panel of a Trusted Publishing upload with the
real attestations of shared/fixtures/pep740, the "provenance lost" warning, hostile metadata
rendered inert, and axe-core on every page."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import pytest
from cryptography import x509
from pypi_attestations import AttestationType

from assay.publishers.policies import SOURCE_REPOSITORY_DIGEST, extension_text
from tests.attestations.conftest import AUDIENCE, GITHUB_ISSUER, attestation_json, fixture_copy, mint
from tests.support.dists import make_sdist, make_wheel
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.server import AssayServer
from tests.support.tls import TLS, tls_server
from tests.support.upload import upload
from tests.ui.conftest import Browsing

SDIST = "pypi_attestations-0.0.19.tar.gz"
REPO = "trailofbits/pypi-attestations"
#: A log viewer on a reserved name (RFC 6761 .invalid): the repository names no public host.
VIEWER = "https://rekor-viewer.invalid/entry?logIndex={log_index}"
HOSTILE = "hostile-meta"


def _hostile_metadata(version: str) -> str:
    script = "<script>window.pwned=1;alert(1)</script>"
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {HOSTILE}",
        f"Version: {version}",
        f"Summary: {script}<b>bold</b>",
        'Author: <img src=x onerror="window.pwned=1">',
        "Maintainer: <svg onload=window.pwned=1></svg>",
        'Author-email: "<script>window.pwned=1</script>" <a@docs.invalid>',
        'Maintainer-email: <img src=x onerror="window.pwned=1">',
        f"Classifier: {script}",
        f"License: </dd></dl>{script}",
        f"Keywords: {script},<i>k</i>",
        "Home-page: javascript:window.pwned=1",
        f"Project-URL: {script}, javascript:window.pwned=1",
        'Project-URL: Docs, https://docs.invalid/"><script>window.pwned=1</script>',
        "Requires-Python: >=3.8",
        "Description-Content-Type: text/markdown",
        "",
        "# Read me",
        "",
        script,
        '<img src=x onerror="window.pwned=1">',
        '<a href="javascript:window.pwned=1">click</a> [md link](javascript:window.pwned=1)',
        '<iframe src="https://frame.invalid/"></iframe><style>body{display:none}</style>',
        '<form action="https://steal.invalid/"><input name=token></form>',
        "",
    ]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tls: TLS, idp: OIDCProvider) -> Iterator[AssayServer]:
    """The real sdist published by its Trusted Publisher with its publish and SLSA attestations;
    then 0.0.20 uploaded with an API token, without provenance (lost); and a project whose
    every metadata field is hostile."""
    tmp = tmp_path_factory.mktemp("public-ui")
    srv = tls_server(tmp / "data", tls, args=("--log-viewer-url", VIEWER)).start()
    try:
        srv.admin("issuer", "add", "--issuer", GITHUB_ISSUER, "--jwks", str(idp.jwks_path))
        srv.ensure_user("owner")
        srv.admin(
            "publisher", "add", "github", "--project", "pypi-attestations", "--owner", "owner",
            "--repository", REPO, "--workflow", "release.yml",
        )
        (dist,) = fixture_copy(tmp, SDIST)
        attestations = [attestation_json(SDIST + ".publish.attestation"), attestation_json(SDIST + ".slsa.attestation")]
        token = mint(srv, idp.token(AUDIENCE, github_claims(REPO, "release.yml"), iss=GITHUB_ISSUER))
        owner = srv.token("owner")
        later = make_sdist(tmp, "pypi-attestations", "0.0.20")
        hostile = make_wheel(tmp, HOSTILE, "1.0", metadata=_hostile_metadata("1.0"))
        with srv.client() as http:
            response = upload(http, dist, token, attestations=json.dumps(attestations))
            assert response.status_code == 200, response.text
            assert upload(http, later, owner).status_code == 200
            response = upload(http, hostile, owner)
            assert response.status_code == 200, response.text
        srv.admin("yank", HOSTILE, "1.0", "--reason", "<script>window.pwned=1</script>")
        yield srv
    finally:
        srv.stop()
        print("\n".join(line for line in srv.log if "INFO" not in line)[-6000:])


def _no_serious_violations(browsing: Browsing, url: str, exclude: tuple[str, ...] = ()) -> None:
    found = browsing.axe(url, exclude)
    assert found == [], "\n".join(found)


def test_search_then_project_release_and_file_pages(server: AssayServer, browsing: Browsing) -> None:
    page = browsing.page()
    page.goto(server.url + "/")
    browsing.screenshot(page, "home")
    page.get_by_label("Search projects by name or summary").fill("attestations")
    page.get_by_role("button", name="Search").click()
    assert page.url.startswith(server.url + "/search/?q=attestations")
    browsing.screenshot(page, "search")
    page.get_by_role("link", name="pypi-attestations").click()
    assert page.url == f"{server.url}/project/pypi-attestations/"
    assert page.locator("h1").first.inner_text() == "pypi-attestations 0.0.20"
    history = page.locator("table").last.inner_text()
    assert "0.0.20" in history
    assert "0.0.19" in history
    browsing.screenshot(page, "project")
    page.get_by_role("link", name="0.0.19", exact=True).click()
    assert page.url == f"{server.url}/project/pypi-attestations/0.0.19/"
    files = page.locator("table").inner_text()
    assert SDIST in files
    assert "9bb1add04b1b4e182be6b0b80931593f7a291eb49d69b4fd728a5d4cbcdc4bd3" in files
    assert "a Trusted Publisher" in files
    browsing.screenshot(page, "release")
    page.get_by_role("link", name=SDIST).click()
    assert page.url == f"{server.url}/project/pypi-attestations/0.0.19/{SDIST}/"
    browsing.screenshot(page, "file")
    # The download link serves the file.
    href = page.get_by_role("link", name=SDIST).first.get_attribute("href")
    assert href is not None
    assert href.startswith("/files/")
    for path in ("/", "/search/?q=attestations", "/project/pypi-attestations/", "/project/pypi-attestations/0.0.19/",
                 f"/project/pypi-attestations/0.0.19/{SDIST}/"):
        _no_serious_violations(browsing, server.url + path)
    assert browsing.dialogs == []


def _certificate_commit(name: str) -> str:
    cert = attestation_json(name)["verification_material"]["certificate"]
    commit = extension_text(x509.load_der_x509_certificate(base64.b64decode(cert)), SOURCE_REPOSITORY_DIGEST)
    assert commit is not None
    return commit


def test_provenance_panel_of_a_trusted_publish(server: AssayServer, browsing: Browsing) -> None:
    page = browsing.page()
    page.goto(f"{server.url}/project/pypi-attestations/0.0.19/{SDIST}/")
    panel = page.locator("#provenance")
    text = panel.inner_text()
    # Who signed: the index's record of the publisher ...
    assert "Attestations for the GitHub publisher" in text
    assert REPO in text
    assert "release.yml" in text
    # ... and, from the certificate, the source commit and ref.
    commit = _certificate_commit(SDIST + ".publish.attestation")
    assert re.fullmatch("[0-9a-f]{40}", commit)
    assert commit in text
    assert "refs/tags/v0.0.19" in text
    assert "https://github.com/trailofbits/pypi-attestations" in text
    assert AttestationType.PYPI_PUBLISH_V1.value in text
    assert AttestationType.SLSA_PROVENANCE_V1.value in text
    # The transparency-log entry, linked through the configured viewer.
    log_index = attestation_json(SDIST + ".publish.attestation")["verification_material"]["transparency_entries"][0][
        "logIndex"
    ]
    link = panel.get_by_role("link", name=f"log index {log_index}")
    assert link.get_attribute("href") == VIEWER.replace("{log_index}", str(log_index))
    assert "Signed at" in text
    assert "2024-12-04" in text
    assert "Signature checked" in text
    assert "this index" in text
    # What it proves and what it does not, in plain words; no badge.
    assert "What this shows" in text
    assert "What this does not show" in text
    assert "does not say that the code at that commit, the workflow or this release was reviewed" in text
    assert "verified" not in text.lower()
    assert not set("✓✔☑✅") & set(page.content())
    # The index's own log: the upload entry, with provenance, and its receipt.
    assert "This index's own log" in text
    assert "upload (with provenance)" in text
    receipt = panel.get_by_role("link", name="Receipt (C2SP tlog-proof) of the upload entry")
    assert (receipt.get_attribute("href") or "").endswith(f"{SDIST}.tlog-proof")
    browsing.screenshot(page, "provenance-panel")
    _no_serious_violations(browsing, page.url)


def test_lost_provenance_is_a_warning_and_in_the_json_api(server: AssayServer, browsing: Browsing) -> None:
    page = browsing.page()
    for path in ("/project/pypi-attestations/", "/project/pypi-attestations/0.0.20/"):
        page.goto(server.url + path)
        warning = page.get_by_role("alert")
        assert (
            "Provenance lost: release 0.0.19 had provenance (from GitHub: repository "
            "trailofbits/pypi-attestations, workflow release.yml)"
        ) in warning.inner_text()
    browsing.screenshot(page, "release-lost")
    page.goto(server.url + "/project/pypi-attestations/0.0.19/")
    assert page.get_by_role("alert").count() == 0
    assert "Every file has provenance" in page.locator("main").inner_text()
    with server.client() as http:
        assert http.get("/pypi/pypi-attestations/json").json()["info"]["provenance_state"] == "lost"
        assert http.get("/pypi/pypi-attestations/0.0.20/json").json()["info"]["provenance_state"] == "lost"
        assert http.get("/pypi/pypi-attestations/0.0.19/json").json()["info"]["provenance_state"] == "full"


def test_hostile_metadata_renders_inert(server: AssayServer, browsing: Browsing) -> None:
    """HTML and script in every free-text field and a malicious README: shown as text, never
    run, never a link elsewhere than http(s). Checked with the CSP bypassed, so it is the
    escaping and sanitising that hold, not only the policy."""
    wheel = "hostile_meta-1.0-py3-none-any.whl"
    context = browsing.audit_context  # bypass_csp
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path in (f"/project/{HOSTILE}/", f"/project/{HOSTILE}/1.0/", f"/project/{HOSTILE}/1.0/{wheel}/",
                 f"/search/?q={HOSTILE}"):
        page.goto(server.url + path)
        assert page.evaluate("window.pwned") is None, path
        active = "script, iframe, object, embed, main form:not([role=search]), main style"
        assert page.locator(active).count() == 0, path
        handlers = page.evaluate(
            """() => [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]
                .filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))"""
        )
        assert handlers == [], path
        hrefs = page.evaluate("() => [...document.querySelectorAll('[href]')].map(e => e.getAttribute('href'))")
        assert not [h for h in hrefs if h.strip().lower().startswith(("javascript:", "data:"))], path
    page.goto(f"{server.url}/project/{HOSTILE}/")
    main = page.locator("main").inner_text()
    assert "<script>window.pwned=1;alert(1)</script><b>bold</b>" in main  # the summary, as text
    assert "javascript:window.pwned=1" in main  # shown, not linked
    assert "yanked: <script>window.pwned=1</script>" in main
    browsing.screenshot(page, "hostile")
    page.close()
    assert dialogs == []
    # The README's own markup (an image without alt text, an unlabelled input) is the
    # maintainers' (sanitised, not rewritten): axe checks the page around it.
    _no_serious_violations(browsing, f"{server.url}/project/{HOSTILE}/", exclude=(".description",))


def test_a_mirror_index_and_a_layered_one_in_the_browser(server: AssayServer, browsing: Browsing) -> None:
    """A mirror index's home says what it mirrors (no credentials), its project and search pages
    say it has none; a hosted index layered over it says whose projects have no pages."""
    server.cli("index", "create", "mirrored", "--mirror", "https://u:pw@upstream.invalid/simple/")
    server.cli("index", "create", "layered", "--bases", "mirrored")
    page = browsing.page()
    page.goto(server.url + "/mirrored/")
    main = page.locator("main").inner_text()
    assert "mirrors https://upstream.invalid/simple/" in main
    assert "pw@" not in page.content()
    assert page.get_by_role("search").count() == 0
    browsing.screenshot(page, "mirror-home")
    _no_serious_violations(browsing, page.url)
    response = page.goto(server.url + "/mirrored/project/anything/")
    assert response is not None
    assert response.status == 404
    assert "have no pages or search here" in page.locator("main").inner_text()
    _no_serious_violations(browsing, page.url)
    page.goto(server.url + "/layered/")
    assert "layered over the mirror mirrored" in page.locator("main").inner_text()
    browsing.screenshot(page, "layered-home")
    _no_serious_violations(browsing, page.url)
    response = page.goto(server.url + "/layered/project/anything/")
    assert response is not None
    assert response.status == 404
    assert "see /layered/simple/anything/" in page.locator("main").inner_text()
