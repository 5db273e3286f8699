"""Helpers shared by the index tests: reading simple pages."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
from uv import find_uv_bin

from tests.support.server import AssayServer, client_environ
from tests.support.upload import upload

UV = find_uv_bin()

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
#: PEP 629 / 691 / 700 / 740 / 792: the API version this index implements.
API_VERSION = "1.4"


class Anchors(HTMLParser):
    """Every <a> with its attributes (entity-decoded) and text; every <meta>."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str | None] = {}
        self._current: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current, self._text = dict(attrs), ""
        elif tag == "meta":
            d = dict(attrs)
            self.meta[d["name"] or ""] = d.get("content")

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.anchors.append((self._current, self._text))
            self._current = None


def upload_and_locate(index: AssayServer, token: str, project: str, files: list[Path]) -> dict[str, str]:
    """Upload ``files`` and return each one's path below the site root, as its project's
    simple page links it (``/files/...``)."""
    with index.client() as c:
        for f in files:
            r = upload(c, f, token)
            assert r.status_code == 200, r.text
        doc = c.get(f"/simple/{project}/", headers={"Accept": JSON_V1}).json()
    base = f"{index.url}/simple/{project}/"
    return {f["filename"]: urljoin(base, f["url"]).removeprefix(index.url) for f in doc["files"]}


def parse(html: str) -> Anchors:
    p = Anchors()
    p.feed(html)
    return p


@contextlib.contextmanager
def leaves_no_trace(index: AssayServer) -> Iterator[None]:
    """The block's upload must leave the blob store exactly as it was: no published blob, no
    metadata file, no staging file."""
    before = index.stored_files()
    yield
    assert index.stored_files() == before, "a rejected upload left files behind"


def assert_refused(response: httpx.Response, status: int, *needles: str) -> None:
    """A clear 4xx: the status, and each needle in the body (what uv shows) and in the reason
    phrase (what twine shows)."""
    assert response.status_code == status, (response.status_code, response.text)
    for needle in needles:
        assert needle in response.text, (needle, response.text)
        assert needle in response.reason_phrase, (needle, response.reason_phrase)


def assert_not_listed(index: AssayServer, project: str, filename: str | None = None) -> None:
    """No row: the project is unknown (filename None) or does not list ``filename``."""
    with index.client() as c:
        simple = c.get(f"/simple/{project}/", headers={"Accept": JSON_V1}, follow_redirects=True)
        api = c.get(f"/pypi/{project}/json", follow_redirects=True)
    if filename is None:
        assert simple.status_code == 404, simple.text
        assert api.status_code == 404, api.text
    else:
        assert filename not in [f["filename"] for f in simple.json()["files"]]
        assert filename not in api.text


def flat(output: str) -> str:
    """Client output with its line wrapping undone (twine and uv wrap long messages)."""
    return " ".join(output.split())


def twine_upload(
    server: AssayServer, token: str, *files: Path, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            url or server.upload_url,
            "-u",
            "__token__",
            "-p",
            token,
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=120,
    )


def uv_publish(
    server: AssayServer, token: str, *files: Path, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            UV,
            "publish",
            "--publish-url",
            url or server.upload_url,
            "--username",
            "__token__",
            "--password",
            token,
            "--trusted-publishing",
            "never",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=120,
    )
