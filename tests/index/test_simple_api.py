"""The simple repository API, exactly (issue 2, item 3): PEP 503 HTML, PEP 691 JSON and content
negotiation, PEP 592 yank, PEP 629 repository version, PEP 658/714 core metadata, PEP 700
versions/size/upload-time, redirects, ETags. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from packaging.utils import canonicalize_name

from assay.admin import projects
from tests.index.helpers import API_VERSION, HTML_V1, JSON_V1, parse
from tests.support.dists import make_sdist, make_wheel, sha256
from tests.support.server import AssayServer
from tests.support.upload import upload


@dataclass
class Published:
    display: str
    name: str  # normalized
    files: dict[str, Path]  # filename -> local copy
    removed: str  # filename of the 4.0 wheel, removed after upload
    yank_reason: str


@pytest.fixture(scope="module")
def published(index: AssayServer, tmp_path_factory: pytest.TempPathFactory) -> Published:
    tmp = tmp_path_factory.mktemp("simple")
    display = f"Simple_Demo.{secrets.token_hex(3)}"
    name = canonicalize_name(display)
    token = index.quick_token("simple-owner")
    files = [
        make_wheel(tmp, display, "1.0"),
        make_sdist(tmp, display, "1.0", pkg_info=f"Metadata-Version: 2.1\nName: {display}\nVersion: 1.0\n"),
        make_wheel(tmp, display, "2.0", requires_python=">=3.8,<4"),
        make_wheel(tmp, display, "3.0"),
        make_wheel(tmp, display, "3.1"),
        make_wheel(tmp, display, "4.0"),
    ]
    with index.client() as c:
        for f in files:
            r = upload(c, f, token)
            assert r.status_code == 200, r.text
    reason = 'broken <build> & "quotes"'
    projects.yank(index.db(), display, "3.0", reason, actor="admin:tests")
    projects.yank(index.db(), name, "3.1", None, actor="admin:tests")
    removed = files[-1].name
    projects.remove_file(index.db(), index.blobs(), removed, actor="admin:tests")
    return Published(display, name, {f.name: f for f in files[:-1]}, removed, reason)


def get_page(index: AssayServer, name: str, accept: str | None = None, **params: str) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    with index.client() as c:
        return c.get(f"/simple/{name}/", headers=headers, params=params)


# ---- PEP 503 HTML ----


def test_html_project_page_lists_every_file_with_its_sha256(index: AssayServer, published: Published) -> None:
    r = get_page(index, published.name, "text/html")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = parse(r.text)
    by_name = {text: attrs for attrs, text in page.anchors}
    # PEP 503: one anchor per file, its text the filename; removed files are gone.
    assert set(by_name) == set(published.files)
    assert published.removed not in r.text
    with index.client() as c:
        for filename, attrs in by_name.items():
            href = attrs["href"]
            assert href is not None
            url, _, fragment = href.partition("#")
            # PEP 503: the URL fragment is <hashname>=<hexdigest>.
            assert fragment == f"sha256={sha256(published.files[filename])}"
            assert url.endswith("/" + filename)
            body = c.get(urljoin(str(r.url), url)).content
            assert body == published.files[filename].read_bytes()


def test_html_data_attributes(index: AssayServer, published: Published) -> None:
    r = get_page(index, published.name, "text/html")
    by_name = {text: attrs for attrs, text in parse(r.text).anchors}
    wheel20 = next(f for f in by_name if "-2.0-" in f)
    # PEP 503: data-requires-python with < and > HTML-encoded in the raw page.
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in r.text
    assert by_name[wheel20]["data-requires-python"] == ">=3.8,<4"
    assert not any("data-requires-python" in a for f, a in by_name.items() if f != wheel20)
    # PEP 592: data-yanked with the reason (escaped), or empty when there is no reason.
    y30 = next(f for f in by_name if "-3.0-" in f)
    y31 = next(f for f in by_name if "-3.1-" in f)
    assert by_name[y30]["data-yanked"] == published.yank_reason
    assert "&lt;build&gt; &amp; &quot;quotes&quot;" in r.text
    assert by_name[y31]["data-yanked"] == ""
    assert re.search(rf'data-yanked=""[^>]*>{re.escape(y31)}<', r.text)
    for f in by_name:
        if f not in (y30, y31):
            assert "data-yanked" not in by_name[f]
    # PEP 658 / 714: data-core-metadata (and the old data-dist-info-metadata) on wheels only,
    # equal to the sha256 of the .metadata file actually served.
    with index.client() as c:
        for filename, attrs in by_name.items():
            if filename.endswith(".whl"):
                served = c.get(urljoin(str(r.url), attrs["href"].partition("#")[0] + ".metadata"))  # type: ignore[union-attr]
                expected = "sha256=" + hashlib.sha256(served.content).hexdigest()
                assert attrs["data-core-metadata"] == expected
                assert attrs["data-dist-info-metadata"] == expected
            else:
                assert "data-core-metadata" not in attrs
                assert "data-dist-info-metadata" not in attrs


def test_html_repository_version_meta(index: AssayServer, published: Published) -> None:
    # PEP 629: <meta name="pypi:repository-version" content="1.x"> on every page.
    for path in (f"/simple/{published.name}/", "/simple/"):
        with index.client() as c:
            page = parse(c.get(path, headers={"Accept": "text/html"}).text)
        assert page.meta["pypi:repository-version"] == API_VERSION


# ---- PEP 691 JSON ----


def test_json_project_page(index: AssayServer, published: Published) -> None:
    started = dt.datetime.now(dt.UTC)
    r = get_page(index, published.name, JSON_V1)
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON_V1
    doc = r.json()
    assert doc["meta"]["api-version"] == API_VERSION
    # PEP 691: "name" is the normalized name.
    assert doc["name"] == published.name
    assert doc["name"] != published.display
    # PEP 700: versions lists every version, also 4.0 whose only file was removed.
    assert doc["versions"] == ["1.0", "2.0", "3.0", "3.1", "4.0"]
    files = {f["filename"]: f for f in doc["files"]}
    assert set(files) == set(published.files)
    for filename, f in files.items():
        local = published.files[filename]
        assert f["hashes"] == {"sha256": sha256(local)}
        # PEP 700: size in bytes and upload-time in ISO 8601 UTC with a Z.
        assert f["size"] == local.stat().st_size
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", f["upload-time"])
        uploaded = dt.datetime.fromisoformat(f["upload-time"].replace("Z", "+00:00"))
        assert uploaded <= started + dt.timedelta(seconds=5)
        assert started - uploaded < dt.timedelta(minutes=10)
        with index.client() as c:
            assert c.get(urljoin(str(r.url), f["url"])).content == local.read_bytes()
        # PEP 691: requires-python only when the file declares it.
        if "-2.0-" in filename:
            assert f["requires-python"] == ">=3.8,<4"
        else:
            assert f.get("requires-python") is None
        # PEP 714: "core-metadata" (never the old "dist-info-metadata" key, which breaks pip < 23.2).
        assert "dist-info-metadata" not in f
        if filename.endswith(".whl"):
            with index.client() as c:
                meta = c.get(urljoin(str(r.url), f["url"]) + ".metadata").content
            assert f["core-metadata"] == {"sha256": hashlib.sha256(meta).hexdigest()}
        else:
            assert f["core-metadata"] is False
    # PEP 592 / 691: yanked is false, true, or the reason.
    yanked = {fn.split("-")[1]: f["yanked"] for fn, f in files.items() if fn.endswith(".whl")}
    assert yanked == {"1.0": False, "2.0": False, "3.0": published.yank_reason, "3.1": True}


def test_json_and_html_list_the_same_files(index: AssayServer, published: Published) -> None:
    html = parse(get_page(index, published.name, "text/html").text)
    doc = get_page(index, published.name, JSON_V1).json()
    assert [text for _, text in html.anchors] == [f["filename"] for f in doc["files"]]


# ---- content negotiation (PEP 691) ----


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "text/html"),  # no Accept = */*: plain HTML for pre-691 clients
        ("*/*", "text/html"),
        ("text/html", "text/html"),
        (HTML_V1, HTML_V1),
        (JSON_V1, JSON_V1),
        # "latest" is answered with the concrete version's type.
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        # pip's header: JSON preferred by q-value.
        (f"{JSON_V1}, {HTML_V1}; q=0.1, text/html; q=0.01", JSON_V1),
        # q-values decide, not order.
        (f"text/html;q=0.2, {JSON_V1};q=0.9", JSON_V1),
        (f"{JSON_V1};q=0.2, text/html;q=0.9", "text/html"),
        # A tie between JSON and HTML: the server's choice (JSON).
        (f"text/html, {JSON_V1}", JSON_V1),
        # q=0 means "not acceptable".
        (f"{JSON_V1};q=0, text/html", "text/html"),
        # Wildcards and case.
        ("text/*", "text/html"),
        ("APPLICATION/VND.PYPI.SIMPLE.V1+JSON", JSON_V1),
        # The most specific entry decides: v1 JSON refused by name is not served through
        # */* (nor as "latest", which is v1).
        (f"{JSON_V1};q=0, */*;q=0.1", "text/html"),
        (f"{JSON_V1};q=0, application/*", HTML_V1),
        ("application/*", JSON_V1),
    ],
)
def test_negotiation(index: AssayServer, published: Published, accept: str | None, content_type: str) -> None:
    for path in (f"/simple/{published.name}/", "/simple/"):
        with index.client() as c:
            r = c.get(path, headers={"Accept": accept} if accept else {})
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == content_type, (path, accept)
        # PEP 691: the answer depends on Accept, so caches must key on it.
        assert "accept" in [v.strip().lower() for v in r.headers["vary"].split(",")]
        if content_type == JSON_V1:
            assert r.json()["meta"]["api-version"] == API_VERSION
        else:
            assert "<!DOCTYPE html>" in r.text


@pytest.mark.parametrize("accept", ["application/json", "image/png, text/plain", f"{JSON_V1};q=0", "*/*;q=0"])
def test_unacceptable_accept_is_406_with_a_message(index: AssayServer, published: Published, accept: str) -> None:
    r = get_page(index, published.name, accept)
    assert r.status_code == 406
    assert "Accept" in r.text
    assert JSON_V1 in r.text  # says what is served


@pytest.mark.parametrize(("fmt", "content_type"), [(JSON_V1, JSON_V1), (HTML_V1, HTML_V1), ("text/html", "text/html")])
def test_format_query_parameter_overrides_accept(
    index: AssayServer, published: Published, fmt: str, content_type: str
) -> None:
    # PEP 691 allows a URL parameter as an alternative negotiation mechanism.
    r = get_page(index, published.name, "text/html" if fmt == JSON_V1 else JSON_V1, format=fmt)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == content_type


def test_format_parameter_typed_with_a_literal_plus(index: AssayServer, published: Published) -> None:
    # "?format=application/vnd.pypi.simple.v1+json" typed into a URL: the "+" arrives as a
    # space under form encoding; the type meant is still clear.
    with index.client() as c:
        r = c.get(f"/simple/{published.name}/?format={JSON_V1}")
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON_V1


def test_unknown_format_parameter_is_406(index: AssayServer, published: Published) -> None:
    r = get_page(index, published.name, None, format="yaml")
    assert r.status_code == 406
    assert "unsupported format 'yaml'" in r.text


# ---- URLs ----


@pytest.mark.parametrize("suffix", ["/", ""])
def test_non_normalized_name_redirects_to_the_normalized_url(
    index: AssayServer, published: Published, suffix: str
) -> None:
    # PEP 503: the index MAY redirect non-normalized URLs to the normalized one.
    query = "format=application/vnd.pypi.simple.v1%2Bjson&x=1"
    with index.client() as c:
        r = c.get(f"/simple/{published.display}{suffix}?{query}")
        assert r.status_code == 301
        location = httpx.URL(r.headers["location"])
        assert location.path == f"/simple/{published.name}/"
        assert location.query == query.encode()  # the query string is kept as it was
        assert c.get(r.headers["location"]).headers["content-type"] == JSON_V1


def test_missing_trailing_slash_redirects(index: AssayServer, published: Published) -> None:
    with index.client() as c:
        r = c.get(f"/simple/{published.name}")
        assert r.status_code == 301
        assert httpx.URL(r.headers["location"]).path == f"/simple/{published.name}/"
        r = c.get("/simple?x=1")
        assert r.status_code == 301
        assert httpx.URL(r.headers["location"]).path == "/simple/"
        assert httpx.URL(r.headers["location"]).params["x"] == "1"
        # pip follows redirects: the non-normalized, slash-less spelling works end to end.
        assert c.get(f"/simple/{published.display.upper()}", follow_redirects=True).status_code == 200


def test_unknown_project_is_404_with_a_message(index: AssayServer) -> None:
    for accept in ("text/html", JSON_V1):
        r = get_page(index, "no-such-project-xyz", accept)
        assert r.status_code == 404
        assert "no-such-project-xyz" in r.text


def test_head_gives_headers_without_a_body(index: AssayServer, published: Published) -> None:
    with index.client() as c:
        get = c.get(f"/simple/{published.name}/", headers={"Accept": JSON_V1})
        head = c.head(f"/simple/{published.name}/", headers={"Accept": JSON_V1})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-type"] == JSON_V1


# ---- project list ----


def test_project_list_in_both_formats(index: AssayServer, published: Published, tmp_path: Path, unique: str) -> None:
    with index.client() as c:
        html = c.get("/simple/", headers={"Accept": "text/html"})
        doc = c.get("/simple/", headers={"Accept": JSON_V1})
    assert doc.headers["content-type"] == JSON_V1
    assert doc.json()["meta"]["api-version"] == API_VERSION
    names = [p["name"] for p in doc.json()["projects"]]
    assert published.display in names
    # PEP 503: anchor text is the name, href the normalized project URL.
    anchors = {text: attrs["href"] for attrs, text in parse(html.text).anchors}
    assert anchors[published.display] == f"{published.name}/"
    assert sorted(anchors) == sorted(names)

    # A new project shows up at once (the cached list is keyed by a change counter).
    token = index.quick_token("list-owner")
    with index.client() as c:
        assert upload(c, make_wheel(tmp_path, unique, "1.0"), token).status_code == 200
        assert unique in [p["name"] for p in c.get("/simple/", headers={"Accept": JSON_V1}).json()["projects"]]
        assert f'href="{unique}/"' in c.get("/simple/").text


# ---- caching ----


def test_etag_and_if_none_match(index: AssayServer, tmp_path: Path, unique: str) -> None:
    token = index.quick_token("etag-owner")
    with index.client() as c:
        assert upload(c, make_wheel(tmp_path, unique, "1.0"), token).status_code == 200
        first = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1})
        etag = first.headers["etag"]
        assert re.fullmatch(r'"[^"]+"', etag), "a strong ETag"
        html_etag = c.get(f"/simple/{unique}/", headers={"Accept": "text/html"}).headers["etag"]
        assert html_etag != etag  # one ETag per representation

        again = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1, "If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert "accept" in again.headers["vary"].lower()
        listed = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1, "If-None-Match": f'"x", {etag}'})
        assert listed.status_code == 304
        # RFC 9110: If-None-Match compares weakly, so W/"<etag>" matches too.
        weak = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1, "If-None-Match": "W/" + etag})
        assert weak.status_code == 304
        star = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1, "If-None-Match": "*"})
        assert star.status_code == 304
        other = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1, "If-None-Match": '"nope"'})
        assert other.status_code == 200

        # A new upload changes the page, so the old ETag no longer matches.
        assert upload(c, make_wheel(tmp_path, unique, "2.0"), token).status_code == 200
        changed = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1, "If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert "2.0" in json.loads(changed.content)["versions"]

        index_etag = c.get("/simple/", headers={"Accept": JSON_V1}).headers["etag"]
        assert c.get("/simple/", headers={"Accept": JSON_V1, "If-None-Match": index_etag}).status_code == 304
