"""Several indexes on one server (issue 11, part 3; PEP 807's isolated registries on one host).

The default index keeps the site-root URLs; a named index ``team`` lives under ``/team/``.
They share users and nothing else: the same project name holds different files in each, a
token of one is refused by the other, and each has its own log. Both backends.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from uv import find_uv_bin

from tests.index.helpers import twine_upload, uv_publish
from tests.support.dists import build_project
from tests.support.server import AssayServer, client_environ, serve_on

UV = find_uv_bin()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def two(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    """One server with the default index and a named one, ``team``."""
    for server in serve_on(tmp_path_factory.mktemp(f"indexes-{request.param}"), request.param):
        server.cli("index", "create", "team", "--description", "the team's own")
        server.cli("user", "create", "alice")
        yield server


def _token(server: AssayServer, index: str | None, *projects: str) -> str:
    args = ["token", "create", "--user", "alice", *(a for p in projects for a in ("--project", p))]
    if index:
        args += ["--index", index]
    return server.cli(*args).stdout.strip()


def _pip_install(url: str, requirement: str, target: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--index-url",
            url,
            "--target",
            str(target),
            requirement,
        ],
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _uv_install(url: str, requirement: str, target: Path) -> None:
    result = subprocess.run(
        [
            UV,
            "pip",
            "install",
            "--no-cache",
            "--index-url",
            url,
            "--python",
            sys.executable,
            "--target",
            str(target),
            requirement,
        ],
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_same_project_name_holds_different_files_in_each_index(
    two: AssayServer, unique: str, tmp_path: Path
) -> None:
    # Version 1.0 in both: the same filenames, different bytes (different metadata).
    default_built = build_project(tmp_path / "d", unique, "1.0")
    team_built = build_project(tmp_path / "t", unique, "1.0", requires_python=">=3.9")
    assert default_built.wheel.name == team_built.wheel.name
    assert default_built.wheel.read_bytes() != team_built.wheel.read_bytes()

    result = twine_upload(two, _token(two, None), *default_built.files)
    assert result.returncode == 0, result.stdout + result.stderr
    result = uv_publish(two, _token(two, "team"), *team_built.files, url=two.url + "/team/legacy/")
    assert result.returncode == 0, result.stdout + result.stderr

    with two.client() as http:
        root = http.get(f"/simple/{unique}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        team = http.get(f"/team/simple/{unique}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        assert {f["filename"] for f in root["files"]} == {f["filename"] for f in team["files"]}
        assert {f["hashes"]["sha256"] for f in root["files"]}.isdisjoint(f["hashes"]["sha256"] for f in team["files"])
        # Each page's file URLs are its own index's, and each serves its own bytes.
        for page, prefix in ((root, ""), (team, "/team")):
            base = httpx.URL(f"{two.url}{prefix}/simple/{unique}/")
            for f in page["files"]:
                absolute = base.join(f["url"])
                assert absolute.path.startswith(f"{prefix}/files/"), absolute
                body = http.get(str(absolute)).content
                assert hashlib.sha256(body).hexdigest() == f["hashes"]["sha256"]
        # The JSON API and the project lists are per index too.
        assert http.get(f"/team/pypi/{unique}/json").json()["info"]["requires_python"] == ">=3.9"
        assert http.get(f"/pypi/{unique}/json").json()["info"]["requires_python"] == ">=3.8"
        assert http.get("/team/pypi/no-such-project-anywhere/json").status_code == 404

    _pip_install(two.url + "/team/simple/", f"{unique}==1.0", tmp_path / "pip-team")
    _uv_install(two.simple, f"{unique}==1.0", tmp_path / "uv-root")
    meta = next((tmp_path / "pip-team").glob("*.dist-info")) / "METADATA"
    assert "Requires-Python: >=3.9" in meta.read_text()
    meta = next((tmp_path / "uv-root").glob("*.dist-info")) / "METADATA"
    assert "Requires-Python: >=3.8" in meta.read_text()


def test_a_token_of_one_index_is_refused_by_the_other(two: AssayServer, unique: str, tmp_path: Path) -> None:
    built = build_project(tmp_path, unique, "1.0")
    team_token = _token(two, "team")
    result = twine_upload(two, team_token, built.wheel)  # to the default index
    assert result.returncode != 0
    assert "not valid on the index 'default'" in result.stdout + result.stderr
    result = twine_upload(two, _token(two, None), built.wheel, url=two.url + "/team/legacy/")
    assert result.returncode != 0
    assert "not valid on the index 'team'" in result.stdout + result.stderr
    # Nothing of either refused upload is anywhere.
    with two.client() as http:
        assert http.get(f"/simple/{unique}/").status_code == 404
        assert http.get(f"/team/simple/{unique}/").status_code == 404


def test_an_unknown_index_and_the_default_by_name_are_404(two: AssayServer) -> None:
    with two.client() as http:
        response = http.get("/nosuch/simple/")
        assert response.status_code == 404
        # An unknown first segment is an ordinary 404: never a redirect to "/nosuch/", never
        # answered by an index's routes.
        assert http.get("/nosuch").status_code == 404
        # The default index has one set of URLs, at the root.
        assert http.get("/default/simple/").status_code == 404
        assert http.post("/nosuch/legacy/", content=b"x").status_code == 404
        # The project list of an index shows only its own projects.
        http.get("/team/simple/").raise_for_status()


def test_each_index_has_its_own_log(two: AssayServer, unique: str, tmp_path: Path) -> None:
    built = build_project(tmp_path, unique, "3.0")
    result = twine_upload(two, _token(two, "team"), built.wheel, url=two.url + "/team/legacy/")
    assert result.returncode == 0, result.stdout + result.stderr
    with two.client() as http:
        team = http.get("/team/log/checkpoint").text
        root = http.get("/log/checkpoint").text
        team_key = http.get("/team/log/key").text.strip()
        root_key = http.get("/log/key").text.strip()
    origin = root.splitlines()[0]  # the server's base URL without the scheme
    assert team.splitlines()[0] == origin + "/team"
    assert team_key.startswith(origin + "/team+")
    assert root_key.startswith(origin + "+")

    # The team's upload went into the team's log only.
    def size(index: str) -> int:
        return int(two.cli("log", "show", "--index", index).stdout.split("size ")[1].split()[0])

    before = size("team"), size("default")
    result = twine_upload(two, _token(two, "team"), built.sdist, url=two.url + "/team/legacy/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (size("team"), size("default")) == (before[0] + 1, before[1])


def test_admin_index_commands(two: AssayServer) -> None:
    listed = [json.loads(line) for line in two.cli("index", "list", "--json").stdout.splitlines()]
    assert [i["name"] for i in listed][:2] == ["default", "team"]
    assert listed[1]["path"] == "/team/"
    shown = json.loads(two.cli("index", "show", "team").stdout)
    assert shown["description"] == "the team's own"
    for bad, why in (
        ("Team", "invalid index name"),
        ("simple", "reserved"),
        ("default", "reserved"),
        ("x-", "invalid"),
    ):
        result = two.cli("index", "create", bad, check=False)
        assert result.returncode == 1
        assert why in result.stderr, result.stderr
    assert "already exists" in two.cli("index", "create", "team", check=False).stderr
    assert "cannot be deleted" in two.cli("index", "delete", "default", "--yes", check=False).stderr
    assert "no index named 'nope'" in two.cli("token", "list", "--index", "nope", check=False).stderr


def test_deleting_an_index_removes_everything_in_it(two: AssayServer, unique: str, tmp_path: Path) -> None:
    two.cli("index", "create", "scratch")
    built = build_project(tmp_path, unique, "1.0")
    token = _token(two, "scratch")
    result = twine_upload(two, token, *built.files, url=two.url + "/scratch/legacy/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(path.startswith("scratch/") for path in two.stored_files())
    assert "deleted index scratch (2 files)" in two.cli("index", "delete", "scratch", "--yes").stdout
    assert not any(path.startswith("scratch/") for path in two.stored_files())
    with two.client() as http:
        assert http.get(f"/scratch/simple/{unique}/").status_code == 404
    # Its token died with it.
    result = twine_upload(two, token, *built.files)
    assert result.returncode != 0
