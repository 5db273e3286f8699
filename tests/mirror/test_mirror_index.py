"""Mirror indexes end to end (issue 12): the one index pip and uv point at.

The upstream is a second ``assay serve`` holding a dependency chain; the index under test has a
mirror index ``up`` of it, and a hosted index ``team`` layered over ``up``. pip and uv install
through both, unchanged; a name hosted (or reserved) locally shadows upstream entirely; the
policy hides files with the reason at their URL; upstream down, the kept pages are served with
a warning.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from uv import find_uv_bin

from tests.support.dists import build_project
from tests.support.server import AssayServer, client_environ, serve_on
from tests.support.upload import upload

UV = find_uv_bin()
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    """The upstream index: a chain m-top -> m-mid -> m-base, and a few loose projects."""
    tmp = tmp_path_factory.mktemp("upstream")
    for server in serve_on(tmp / "data", "sqlite"):
        token = server.quick_token("up-alice")
        chain = [("m-base", ()), ("m-mid", ("m-base",)), ("m-top", ("m-mid",)), ("m-reserved", ()), ("m-denied", ())]
        with server.client() as http:
            for name, deps in chain:
                built = build_project(tmp / name, name, "1.0", dependencies=deps)
                for dist in built.files:
                    assert upload(http, dist, token).status_code == 200
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def mirror(
    request: pytest.FixtureRequest, upstream: AssayServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AssayServer]:
    tmp = tmp_path_factory.mktemp(f"mirror-{request.param}")
    # TTL 0: every page request revalidates with upstream (so "upstream down" is seen at once).
    for server in serve_on(tmp / "data", request.param, ["--mirror-page-ttl", "0"]):
        server.cli("index", "create", "up", "--mirror", upstream.simple)
        server.cli("index", "create", "team", "--bases", "up")
        policy = tmp / "policy.toml"
        policy.write_text('[projects]\ndeny = ["m-denied"]\n')
        server.cli("policy", "set", "--index", "up", str(policy))
        yield server


def _install(tool: str, url: str, requirement: str, target: Path) -> subprocess.CompletedProcess[str]:
    if tool == "pip":
        cmd = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--index-url", url, "--target", str(target)]
    else:
        cmd = [UV, "pip", "install", "--no-cache", "--index-url", url, "--python", sys.executable, "--target",
               str(target)]  # fmt: skip
    return subprocess.run([*cmd, requirement], capture_output=True, text=True, env=client_environ(), timeout=300)


def _installed(target: Path) -> dict[str, str]:
    found = {}
    for meta in target.glob("*.dist-info/METADATA"):
        fields = dict(line.split(": ", 1) for line in meta.read_text().splitlines() if ": " in line)
        found[fields["Name"]] = fields["Version"]
    return found


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_dependency_chain_installs_through_the_mirror(mirror: AssayServer, tool: str, tmp_path: Path) -> None:
    result = _install(tool, mirror.url + "/up/simple/", "m-top", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _installed(tmp_path / "site") == {"m-top": "1.0", "m-mid": "1.0", "m-base": "1.0"}
    with mirror.client() as http:
        page = http.get("/up/simple/m-top/", headers=JSON).json()
        # The files are served by the mirror itself, below its own prefix.
        url = httpx.URL(mirror.url + "/up/simple/m-top/").join(page["files"][0]["url"])
        assert url.path.startswith("/up/files/mirror/")


def test_a_locally_hosted_name_shadows_every_base(mirror: AssayServer, upstream: AssayServer, tmp_path: Path) -> None:
    # team hosts its own m-base 9.0: through team, upstream's m-base does not exist at all.
    mirror.quick_user("team-bob")
    team_token = mirror.cli("token", "create", "--user", "team-bob", "--index", "team").stdout.strip()
    built = build_project(tmp_path / "b", "m-base", "9.0")
    with mirror.client(index="team") as http:
        for dist in built.files:
            response = upload(http, dist, team_token)
            assert response.status_code == 200, response.text
        page = http.get("/simple/m-base/", headers=JSON).json()
    assert {f["filename"].split("-")[1].removesuffix(".tar.gz") for f in page["files"]} == {"9.0"}
    result = _install("uv", mirror.url + "/team/simple/", "m-top", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _installed(tmp_path / "site") == {"m-top": "1.0", "m-mid": "1.0", "m-base": "9.0"}
    # ... while the mirror itself still serves upstream's.
    with mirror.client(index="up") as http:
        page = http.get("/simple/m-base/", headers=JSON).json()
    assert {f["filename"].split("-")[1].removesuffix(".tar.gz") for f in page["files"]} == {"1.0"}


def test_a_reserved_name_never_comes_from_upstream(mirror: AssayServer, tmp_path: Path) -> None:
    mirror.cli("project", "reserve", "m-reserved", "--index", "up")
    with mirror.client(index="up") as http:
        page = http.get("/simple/m-reserved/", headers=JSON)
    assert page.status_code == 200
    assert page.json()["files"] == []
    result = _install("pip", mirror.url + "/up/simple/", "m-reserved", tmp_path / "site")
    assert result.returncode != 0
    assert "No matching distribution" in result.stderr


def test_the_policy_hides_a_file_and_says_why_at_its_url(mirror: AssayServer, upstream: AssayServer) -> None:
    with mirror.client(index="up") as http:
        assert http.get("/simple/m-denied/", headers=JSON).json()["files"] == []
        # The URL the file would have (the mirror's own, as for an allowed project) says why not.
        allowed = http.get("/simple/m-base/", headers=JSON).json()["files"][0]["url"]
        mirror_id = allowed.split("/files/mirror/")[1].split("/")[0]
        denied = httpx.get(upstream.simple + "m-denied/", headers=JSON).json()["files"][0]
        sha = denied["hashes"]["sha256"]
        response = http.get(f"/files/mirror/{mirror_id}/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{denied['filename']}")
    assert response.status_code == 404
    assert "hidden by this index's policy (denied)" in response.text
    report = mirror.cli("policy", "report", "--index", "up").stdout
    assert "m-denied" in report
    assert "denied" in report


def test_a_mirror_takes_no_uploads(mirror: AssayServer, tmp_path: Path) -> None:
    mirror.quick_user("up-carol")
    token = mirror.cli("token", "create", "--user", "up-carol", "--index", "up").stdout.strip()
    built = build_project(tmp_path, "m-new", "1.0")
    with mirror.client(index="up") as http:
        response = upload(http, built.wheel, token)
    assert response.status_code == 403
    assert "is a mirror of" in response.text


def test_admin_refuses_bad_mirror_settings(mirror: AssayServer) -> None:
    for args, message in (
        (["bad1", "--mirror", "ftp://x/simple/"], "must be an http(s) URL"),
        (["bad2", "--bases", "nosuch"], "no index named 'nosuch'"),
        (["bad3", "--bases", "team"], "is not a mirror index"),
        (["bad4", "--mirror", "http://127.0.0.1:1/simple/", "--bases", "up"], "not both"),
    ):
        result = mirror.cli("index", "create", *args, check=False)
        assert result.returncode == 1, result
        assert message in result.stderr, result.stderr
    assert "is a base of team" in mirror.cli("index", "delete", "up", "--yes", check=False).stderr


def test_uv_lock_with_the_mirror_as_default_index(mirror: AssayServer, tmp_path: Path) -> None:
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1"\nrequires-python = ">=3.8"\ndependencies = ["m-top"]\n'
    )
    url = mirror.url + "/up/simple/"
    result = subprocess.run(
        [UV, "lock", "--default-index", url, "--no-cache", "--python", sys.executable],
        cwd=project,
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lock = (project / "uv.lock").read_text()
    for name in ("m-top", "m-mid", "m-base"):
        assert f'name = "{name}"' in lock
    # Every file the lock pins is the mirror's own URL (the provenance of each is re-served there).
    assert f'registry = "{url}"' in lock or f'registry = "{url.rstrip("/")}"' in lock
    assert "/up/files/mirror/" in lock


def test_the_json_api_of_a_mirrored_project_is_the_decided_page(mirror: AssayServer) -> None:
    """PyPI's JSON API answers for a mirrored project, directly and through a layered index,
    from the policy-filtered page: the same files, every URL the mirror's own."""
    for index in ("up", "team"):
        with mirror.client(index=index) as http:
            page = http.get("/simple/m-mid/", headers=JSON).json()
            doc = http.get("/pypi/m-mid/json")
            assert doc.status_code == 200, doc.text
            body = doc.json()
            assert body["info"]["name"] == "m-mid"
            assert body["info"]["version"] == "1.0"
            assert set(body["releases"]) == {"1.0"}
            simple = {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}
            # Mirrored uploads were upstream's, never in this index's log: no receipt offered.
            assert not any("_assay_log_receipt" in f for f in page["files"])
            assert {f["filename"]: f["digests"]["sha256"] for f in body["urls"]} == simple
            for f in body["urls"]:
                assert f["url"].startswith(f"{mirror.url}/{index}/files/mirror/"), f["url"]
                assert f["packagetype"] in ("bdist_wheel", "sdist")
                assert http.get(f["url"]).status_code == 200
            release = http.get("/pypi/m-mid/1.0/json")
            assert release.status_code == 200
            assert release.json()["urls"] == body["urls"]
            assert http.get("/pypi/m-mid/2.0/json").status_code == 404
            # Every file of a denied project is hidden: no release to show.
            assert http.get("/pypi/m-denied/json").status_code == 404
            assert http.get("/pypi/m-denied/1.0/json").status_code == 404
            assert http.get("/pypi/m-nowhere/json").status_code == 404


def test_a_kept_mirrored_file_is_served_as_hosted_files_are(mirror: AssayServer) -> None:
    """Once kept, a mirrored file takes the hosted files' path (headers built once, bytes from
    the event loop): whole, HEAD, a Range, a conditional GET, and still never immutable."""
    with mirror.client(index="up") as http:
        page = http.get("/simple/m-base/", headers=JSON).json()
        entry = next(f for f in page["files"] if f["filename"].endswith(".whl"))
        url = str(httpx.URL(mirror.url + "/up/simple/m-base/").join(entry["url"]))
        whole = http.get(url)
        assert whole.status_code == 200
        assert hashlib.sha256(whole.content).hexdigest() == entry["hashes"]["sha256"]
        again = http.get(url)  # from the file cache now
        assert again.content == whole.content
        assert again.headers["cache-control"].endswith("no-cache")
        assert again.headers["etag"] == f'"{entry["hashes"]["sha256"]}"'
        head = http.head(url)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(whole.content))
        part = http.get(url, headers={"Range": "bytes=0-9"})
        assert part.status_code == 206
        assert part.content == whole.content[:10]
        assert http.get(url, headers={"If-None-Match": again.headers["etag"]}).status_code == 304
        metadata = http.get(url + ".metadata")
        assert metadata.status_code == 200
        assert b"Name: m-base" in metadata.content


def _listed(http: httpx.Client) -> set[str]:
    response = http.get("/simple/", headers=JSON)
    assert response.status_code == 200, response.text
    return {p["name"] for p in response.json()["projects"]}


def test_the_project_list_has_upstreams_names(mirror: AssayServer, upstream: AssayServer, tmp_path: Path) -> None:
    """``/simple/`` of a mirror and of a layered index lists upstream's projects (minus the
    denied one) with the index's own; a project new upstream appears once the list is
    revalidated (TTL 0 here), and the HTML form lists the same names."""
    mirror.cli("project", "reserve", "m-reserved-too", "--index", "up")
    with mirror.client(index="up") as http:
        names = _listed(http)
        assert {"m-base", "m-mid", "m-top", "m-reserved", "m-reserved-too"} <= names
        assert "m-denied" not in names
        html = http.get("/simple/", headers={"Accept": "text/html"}).text
        assert '<a href="m-top/">m-top</a>' in html or ">m-top</a>" in html
        assert ">m-denied<" not in html
    token = upstream.quick_token("up-late")
    late = f"m-late-{mirror.url.rsplit(':', 1)[1]}"  # the upstream is shared by both backends' mirrors
    built = build_project(tmp_path / "late", late, "1.0")
    with upstream.client() as http:
        assert upload(http, built.wheel, token).status_code == 200
    with mirror.client(index="up") as http:
        assert late in _listed(http)
    mirror.quick_user("team-lister")
    team_token = mirror.cli("token", "create", "--user", "team-lister", "--index", "team").stdout.strip()
    own = build_project(tmp_path / "own", "team-only", "1.0")
    with mirror.client(index="team") as http:
        assert upload(http, own.wheel, team_token).status_code == 200
        names = _listed(http)
    assert {"team-only", "m-base", "m-top", late} <= names
    assert "m-denied" not in names
    assert "m-reserved-too" not in names  # reserved on up, not on team: upstream (the other assay) has no such name
    # The default index, without upstreams, lists only its own.
    with mirror.client() as http:
        assert not {"m-base", "m-top"} & _listed(http)


def test_upstream_down_serves_the_kept_pages_with_a_warning(mirror: AssayServer, upstream: AssayServer) -> None:
    """Last in the module: it stops the upstream (and starts it again for the other backend)."""
    with mirror.client(index="up") as http:
        assert http.get("/simple/m-mid/").status_code == 200  # kept now
        assert http.get("/simple/").status_code == 200
        upstream.stop()
        try:
            response = http.get("/simple/m-mid/", headers=JSON)
            assert response.status_code == 200
            assert response.json()["files"]
            assert response.headers["warning"].startswith('110 assay "')
            # The project list too: as kept, with the warning.
            listing = http.get("/simple/", headers=JSON)
            assert listing.status_code == 200
            assert "m-mid" in {p["name"] for p in listing.json()["projects"]}
            assert listing.headers["warning"].startswith('110 assay "')
            # Never fetched: an error, not an error page posing as a simple page.
            never = http.get("/simple/m-never-seen/")
            assert never.status_code == 502
            assert never.headers["content-type"].startswith("text/plain")
        finally:
            upstream.start()
