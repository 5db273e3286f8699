"""The index with the real clients: twine and uv publish upload, pip and uv install.

Runs against both backends (the ``index`` fixture is parametrized over SQLite and PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from uv import find_uv_bin

from tests.index.helpers import flat, twine_upload, uv_publish
from tests.support.dists import build_project
from tests.support.server import AssayServer, client_environ

UV = find_uv_bin()


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, env=client_environ(), timeout=300, **kw)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{cmd[:3]} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def token(index: AssayServer) -> str:
    return index.quick_token("publisher")


def test_twine_upload_then_pip_install(index: AssayServer, token: str, unique: str, tmp_path: Path) -> None:
    built = build_project(tmp_path, unique, "1.0")
    result = twine_upload(index, token, *built.files)
    assert result.returncode == 0, result.stdout + result.stderr

    target = tmp_path / "site"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--index-url",
            index.simple,
            "--target",
            str(target),
            f"{unique}==1.0",
        ]
    )
    module = unique.replace("-", "_")
    assert (target / module / "__init__.py").read_text().endswith('VERSION = "1.0"\n')


def test_uv_publish_then_uv_pip_install(index: AssayServer, token: str, unique: str, tmp_path: Path) -> None:
    built = build_project(tmp_path, unique, "2.0")
    result = uv_publish(index, token, *built.files)
    assert result.returncode == 0, result.stdout + result.stderr

    target = tmp_path / "site"
    run(
        [
            UV,
            "pip",
            "install",
            "--no-cache",
            "--index-url",
            index.simple,
            "--python",
            sys.executable,
            "--target",
            str(target),
            f"{unique}==2.0",
        ]
    )
    assert (target / unique.replace("-", "_") / "__init__.py").exists()


def test_identical_reupload_is_accepted_by_both_clients(
    index: AssayServer, token: str, unique: str, tmp_path: Path
) -> None:
    # PyPI answers 200 to an identical re-upload; twine (with or without --skip-existing) and
    # uv publish both count it as done.
    built = build_project(tmp_path, unique, "1.0")
    assert twine_upload(index, token, *built.files).returncode == 0
    again = twine_upload(index, token, *built.files)
    assert again.returncode == 0, again.stdout + again.stderr
    assert uv_publish(index, token, *built.files).returncode == 0


def test_same_filename_different_content_is_refused_and_twine_shows_why(
    index: AssayServer, token: str, unique: str, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_project(tmp_path / "a", unique, "1.0")
    assert twine_upload(index, token, first.wheel).returncode == 0
    other = build_project(tmp_path / "b", unique, "1.0", requires_python=">=3.9")  # other bytes, same name
    assert other.wheel.name == first.wheel.name
    result = twine_upload(index, token, other.wheel)
    assert result.returncode != 0
    # twine prints only the HTTP reason phrase: the message must be in it.
    assert "File already exists" in flat(result.stdout + result.stderr)
    # twine >= 7 accepts --skip-existing only for PyPI's own URLs, so the flag cannot be used
    # against any other index; its decision function is what we can hold our answer to: it
    # must classify this real response as "already exists".
    import requests
    from twine.commands.upload import skip_upload

    from tests.support.upload import basic, form_for

    response = requests.post(
        index.upload_url,
        data=form_for(other.wheel),
        files={"content": (other.wheel.name, other.wheel.read_bytes())},
        headers=basic(token),
        timeout=60,
    )
    assert response.status_code == 400
    assert skip_upload(response, True, None)  # type: ignore[arg-type]

    uv = uv_publish(index, token, other.wheel)
    assert uv.returncode != 0
    assert "File already exists" in flat(uv.stdout + uv.stderr)


@pytest.mark.parametrize("path", ["/simple/", "/"])
def test_uploading_to_the_simple_url_says_where_uploads_go(
    index: AssayServer, token: str, unique: str, tmp_path: Path, path: str
) -> None:
    # Issue 10, item 19: the simple URL given as the upload URL got a bare 405.
    built = build_project(tmp_path, unique, "1.0")
    expected = f"uploads go to {index.url}/legacy/"
    twine = twine_upload(index, token, built.wheel, url=index.url + path)
    assert twine.returncode != 0
    assert "405" in twine.stdout + twine.stderr
    assert expected in flat(twine.stdout + twine.stderr)
    uv = uv_publish(index, token, built.wheel, url=index.url + path)
    assert uv.returncode != 0
    assert expected in flat(uv.stdout + uv.stderr)


def test_pip_resolves_from_the_metadata_file_without_downloading_the_wheel(
    index: AssayServer, token: str, unique: str, tmp_path: Path
) -> None:
    built = build_project(tmp_path, unique, "1.0")
    assert twine_upload(index, token, built.wheel).returncode == 0
    before = len(index.access_log())
    report = tmp_path / "report.json"
    # --dry-run --report resolves without installing: with PEP 658 metadata pip needs
    # only the .metadata file.
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            "--index-url",
            index.simple,
            unique,
        ]
    )
    time.sleep(0.3)  # let the server flush its access log
    requests = [line for line in index.access_log()[before:] if "/files/" in line]
    wheel = built.wheel.name
    assert any(f"{wheel}.metadata HTTP" in line and '" 200' in line for line in requests), requests
    assert not any(f"{wheel} HTTP" in line for line in requests), requests
    resolved = json.loads(report.read_text())["install"]
    assert [item["metadata"]["version"] for item in resolved] == ["1.0"]


def test_uv_exclude_newer_honours_upload_time(index: AssayServer, token: str, unique: str, tmp_path: Path) -> None:
    old = build_project(tmp_path, unique, "1.0")
    assert uv_publish(index, token, old.wheel).returncode == 0
    time.sleep(1.1)
    cutoff = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    new = build_project(tmp_path, unique, "2.0")
    assert uv_publish(index, token, new.wheel).returncode == 0

    report = run(
        [
            UV,
            "pip",
            "compile",
            "--no-cache",
            "--index-url",
            index.simple,
            "--python",
            sys.executable,
            "--exclude-newer",
            cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "-",
        ],
        input=f"{unique}\n",
    )
    assert f"{unique}==1.0" in report.stdout
    latest = run(
        [UV, "pip", "compile", "--no-cache", "--index-url", index.simple, "--python", sys.executable, "-"],
        input=f"{unique}\n",
    )
    assert f"{unique}==2.0" in latest.stdout
