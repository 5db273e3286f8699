"""PEP 792 project status markers: active, archived, quarantined, deprecated (issue 2, item 3).

PEP 792: the status is served as ``<meta name="pypi:project-status">`` (and
``pypi:project-status-reason``) in HTML and as the ``project-status`` object in JSON; a
quarantined project offers no files; archived and quarantined projects take no uploads.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin

import pytest

from assay.admin import projects
from tests.index.helpers import JSON_V1, parse
from tests.support.dists import make_wheel
from tests.support.server import AssayServer
from tests.support.upload import upload


@pytest.fixture(scope="module")
def token(index: AssayServer) -> str:
    return index.quick_token("status-owner")


def set_status(index: AssayServer, name: str, status: str, reason: str | None = None) -> None:
    projects.set_status(index.db(), name, status, reason, actor="admin:tests")


def pages(index: AssayServer, name: str) -> tuple[str, dict[str, object]]:
    with index.client() as c:
        html = c.get(f"/simple/{name}/", headers={"Accept": "text/html"})
        doc = c.get(f"/simple/{name}/", headers={"Accept": JSON_V1})
    assert html.status_code == 200
    assert doc.status_code == 200
    return html.text, doc.json()


def publish(index: AssayServer, token: str, tmp_path: Path, name: str, version: str = "1.0") -> str:
    wheel = make_wheel(tmp_path, name, version)
    with index.client() as c:
        r = upload(c, wheel, token)
    assert r.status_code == 200, r.text
    return wheel.name


def test_active_is_stated(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    publish(index, token, tmp_path, unique)
    html, doc = pages(index, unique)
    assert parse(html).meta["pypi:project-status"] == "active"
    assert "pypi:project-status-reason" not in parse(html).meta
    assert doc["project-status"] == {"status": "active"}


def test_archived(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    filename = publish(index, token, tmp_path, unique)
    set_status(index, unique, "archived", "moved to <new-project> & friends")
    html, doc = pages(index, unique)
    meta = parse(html).meta
    assert meta["pypi:project-status"] == "archived"
    assert meta["pypi:project-status-reason"] == "moved to <new-project> & friends"
    assert doc["project-status"] == {"status": "archived", "reason": "moved to <new-project> & friends"}
    # Archived files stay installable ...
    assert [f["filename"] for f in doc["files"]] == [filename]  # type: ignore[union-attr,index]
    with index.client() as c:
        page_url = f"{index.url}/simple/{unique}/"
        assert c.get(urljoin(page_url, doc["files"][0]["url"])).status_code == 200  # type: ignore[index]
        # ... but the project takes no new uploads.
        r = upload(c, make_wheel(tmp_path, unique, "2.0"), token)
        assert r.status_code == 403
        assert "archived" in r.text
        assert "PEP 792" in r.text
        assert r.reason_phrase.startswith(f"Project '{unique}' is archived")
        assert c.get(f"/pypi/{unique}/json").json()["info"]["project_status"]["status"] == "archived"
    _, doc = pages(index, unique)
    assert doc["versions"] == ["1.0"]


def test_quarantined_offers_no_files(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    filename = publish(index, token, tmp_path, unique)
    with index.client() as c:
        _, before = pages(index, unique)
        file_url = urljoin(f"{index.url}/simple/{unique}/", before["files"][0]["url"])  # type: ignore[index]
        assert c.get(file_url).status_code == 200
        set_status(index, unique, "quarantined", "malware report 123")
        html, doc = pages(index, unique)
        assert parse(html).meta["pypi:project-status"] == "quarantined"
        assert doc["project-status"] == {"status": "quarantined", "reason": "malware report 123"}
        # PEP 792: a quarantined project's files are not offered at all.
        assert doc["files"] == []
        assert parse(html).anchors == []
        assert filename not in html
        assert c.get(file_url).status_code == 404
        assert c.get(file_url + ".metadata").status_code == 404
        assert c.get(f"/pypi/{unique}/json").json()["urls"] == []
        r = upload(c, make_wheel(tmp_path, unique, "2.0"), token)
        assert r.status_code == 403
        assert "quarantined" in r.text
        # Lifting the quarantine brings the files back.
        set_status(index, unique, "active")
        _, doc = pages(index, unique)
        assert [f["filename"] for f in doc["files"]] == [filename]  # type: ignore[union-attr,index]
        assert c.get(file_url).status_code == 200
        assert doc["project-status"] == {"status": "active"}


def test_deprecated_still_takes_uploads(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    publish(index, token, tmp_path, unique)
    set_status(index, unique, "deprecated")
    html, doc = pages(index, unique)
    assert parse(html).meta["pypi:project-status"] == "deprecated"
    assert "pypi:project-status-reason" not in parse(html).meta
    assert doc["project-status"] == {"status": "deprecated"}
    second = publish(index, token, tmp_path, unique, "2.0")
    _, doc = pages(index, unique)
    assert second in [f["filename"] for f in doc["files"]]  # type: ignore[union-attr]
