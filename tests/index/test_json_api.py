"""PyPI's JSON API, ``/pypi/<project>/json`` and ``/pypi/<project>/<version>/json`` (issue 2,
item 3): PyPI's shape (info, last_serial, releases, urls, vulnerabilities), digests, both
upload_time formats, yank fields, and PyPI's choice of the latest version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from pathlib import Path

import pytest

from assay.admin import projects
from tests.support.dists import make_sdist, make_wheel, metadata_text
from tests.support.server import AssayServer
from tests.support.upload import upload


@pytest.fixture(scope="module")
def token(index: AssayServer) -> str:
    return index.quick_token("json-owner")


def publish(index: AssayServer, token: str, *files: Path) -> None:
    with index.client() as c:
        for f in files:
            r = upload(c, f, token)
            assert r.status_code == 200, r.text


def get(index: AssayServer, path: str) -> dict[str, object]:
    with index.client() as c:
        r = c.get(path)
    assert r.status_code == 200, (path, r.text)
    assert r.headers["content-type"] == "application/json"
    doc: dict[str, object] = r.json()
    return doc


def test_project_json_has_pypis_shape(index: AssayServer, token: str, tmp_path: Path) -> None:
    display = f"Json_Demo.{secrets.token_hex(3)}"
    extra = "Author: Ada\nKeywords: one,two\nRequires-Dist: attrs>=22\nProject-URL: Home, https://example.org\n"
    wheel = make_wheel(
        tmp_path,
        display,
        "1.0",
        metadata=metadata_text(display, "1.0", requires_python=">=3.9", extra=extra),
    )
    sdist = make_sdist(tmp_path, display, "1.0", pkg_info=metadata_text(display, "1.0", requires_python=">=3.9"))
    publish(index, token, wheel, sdist)
    doc = get(index, f"/pypi/{display}/json")
    assert set(doc) >= {"info", "last_serial", "releases", "urls", "vulnerabilities"}
    assert doc["vulnerabilities"] == []
    assert isinstance(doc["last_serial"], int)
    info = doc["info"]
    assert isinstance(info, dict)
    assert info["name"] == display  # PyPI shows the display name
    assert info["version"] == "1.0"
    assert info["summary"] == "test"
    assert info["author"] == "Ada"
    assert info["requires_python"] == ">=3.9"
    assert info["requires_dist"] == ["attrs>=22"]
    assert info["project_urls"] == {"Home": "https://example.org"}
    assert info["yanked"] is False
    assert info["yanked_reason"] is None
    for key in ("home_page", "license", "classifiers", "description", "package_url", "release_url"):
        assert key in info

    urls = doc["urls"]
    assert isinstance(urls, list)
    assert {u["filename"] for u in urls} == {wheel.name, sdist.name}
    assert doc["releases"] == {"1.0": urls}
    for u in urls:
        local = wheel if u["filename"] == wheel.name else sdist
        data = local.read_bytes()
        assert u["digests"] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - PyPI's field
            "blake2b_256": hashlib.blake2b(data, digest_size=32).hexdigest(),
        }
        assert u["md5_digest"] == u["digests"]["md5"]
        assert u["size"] == len(data)
        assert u["packagetype"] == ("bdist_wheel" if local is wheel else "sdist")
        assert u["python_version"] == ("py3" if local is wheel else "source")
        assert u["requires_python"] == ">=3.9"
        assert u["yanked"] is False
        assert u["yanked_reason"] is None
        # PyPI's two upload time fields: naive seconds, and ISO 8601 with microseconds and Z.
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", u["upload_time"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", u["upload_time_iso_8601"])
        assert u["upload_time_iso_8601"].startswith(u["upload_time"])
        uploaded = dt.datetime.fromisoformat(u["upload_time_iso_8601"].replace("Z", "+00:00"))
        assert abs(dt.datetime.now(dt.UTC) - uploaded) < dt.timedelta(minutes=10)
        with index.client() as c:
            assert c.get(u["url"]).content == data  # an absolute, working URL
        if local is wheel:
            assert u["core_metadata"] == {
                "sha256": hashlib.sha256(
                    metadata_text(display, "1.0", requires_python=">=3.9", extra=extra).encode()
                ).hexdigest()
            }
        else:
            assert u["core_metadata"] is False


def test_release_json(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    publish(index, token, make_wheel(tmp_path, unique, "1.0"), make_wheel(tmp_path, unique, "2.0"))
    doc = get(index, f"/pypi/{unique}/1.0/json")
    assert doc["info"]["version"] == "1.0"  # type: ignore[index]
    assert [u["filename"] for u in doc["urls"]] == [f"{unique.replace('-', '_')}-1.0-py3-none-any.whl"]  # type: ignore[attr-defined]
    assert "releases" not in doc  # PyPI dropped "releases" from the per-version endpoint
    assert doc["vulnerabilities"] == []
    # The version is matched by its canonical form, and the project by its normalized name.
    assert get(index, f"/pypi/{unique.upper()}/1.0.0/json")["info"]["version"] == "1.0"  # type: ignore[index]


def test_404s(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    publish(index, token, make_wheel(tmp_path, unique, "1.0"))
    with index.client() as c:
        for path in (
            f"/pypi/{unique}-nope/json",
            f"/pypi/{unique}/9.9/json",
            f"/pypi/{unique}/not a version/json",
            f"/pypi/{unique}-nope/1.0/json",
        ):
            r = c.get(path)
            assert r.status_code == 404, path
            assert r.json() == {"message": "Not Found"}


def test_latest_version_is_the_newest_final_non_yanked_release(
    index: AssayServer, token: str, tmp_path: Path, unique: str
) -> None:
    publish(index, token, *(make_wheel(tmp_path, unique, v) for v in ("1.0", "1.10", "1.9", "2.0rc1")))
    # PEP 440 order (1.10 > 1.9), prereleases only when nothing else is there (PyPI).
    assert get(index, f"/pypi/{unique}/json")["info"]["version"] == "1.10"  # type: ignore[index]
    projects.yank(index.db(), unique, "1.10", "bad build", actor="admin:tests")
    doc = get(index, f"/pypi/{unique}/json")
    assert doc["info"]["version"] == "1.9"  # type: ignore[index]
    # The yanked release is still listed, marked as yanked with its reason.
    [yanked] = doc["releases"]["1.10"]  # type: ignore[index]
    assert yanked["yanked"] is True
    assert yanked["yanked_reason"] == "bad build"
    assert get(index, f"/pypi/{unique}/1.10/json")["info"]["yanked_reason"] == "bad build"  # type: ignore[index]
    assert list(doc["releases"]) == ["1.0", "1.9", "1.10", "2.0rc1"]  # type: ignore[arg-type]
    # A release whose files were all removed is not "latest" and lists no files.
    projects.remove_file(
        index.db(), index.blobs(), f"{unique.replace('-', '_')}-1.9-py3-none-any.whl", actor="admin:tests"
    )
    doc = get(index, f"/pypi/{unique}/json")
    assert doc["info"]["version"] == "1.0"  # type: ignore[index]
    assert doc["releases"]["1.9"] == []  # type: ignore[index]


def test_only_prereleases(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    publish(index, token, make_wheel(tmp_path, unique, "1.0a1"), make_wheel(tmp_path, unique, "1.0b2"))
    assert get(index, f"/pypi/{unique}/json")["info"]["version"] == "1.0b2"  # type: ignore[index]


def test_last_serial_grows_with_each_change(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    publish(index, token, make_wheel(tmp_path, unique, "1.0"))
    first = get(index, f"/pypi/{unique}/json")["last_serial"]
    publish(index, token, make_wheel(tmp_path, unique, "1.1"))
    second = get(index, f"/pypi/{unique}/json")["last_serial"]
    projects.yank(index.db(), unique, "1.0", None, actor="admin:tests")
    third = get(index, f"/pypi/{unique}/json")["last_serial"]
    assert first < second < third  # type: ignore[operator]
