"""``assay serve --server granian`` (issue 17, item 3): the optional server with the ASGI pathsend
extension, through real clients (twine uploads, uv installs, httpx reads).

What differs from uvicorn is stated in ``assay.cli.granian`` and checked here where it is a
refusal (``--proxy-headers``); what must not differ (security headers, error bodies, files and
their ranges) is checked against the running server.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from uv import find_uv_bin

from tests.index.helpers import JSON_V1, twine_upload
from tests.support.dists import build_project, make_wheel
from tests.support.server import AssayServer, client_environ
from tests.support.upload import upload

UV = find_uv_bin()


@pytest.fixture(scope="module")
def granian(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    # The test servers log every request; under granian an access log is refused (see below).
    env = {"ASSAY_ACCESS_LOG": "false"}
    server = AssayServer(tmp_path_factory.mktemp("granian"), args=["--server", "granian"], env=env).start()
    try:
        yield server
    finally:
        server.stop()


def test_serves_a_large_file_whole_and_in_ranges_with_the_security_headers(
    granian: AssayServer, tmp_path: Path
) -> None:
    token = granian.quick_token("granian-owner")
    payload = os.urandom(3 * 1024 * 1024)  # above filesend.SMALL_FILE: sent by pathsend
    wheel = make_wheel(tmp_path, "granian-big", "1.0", extra_files={"granian_big/blob.bin": payload})
    with granian.client() as c:
        assert upload(c, wheel, token).status_code == 200
        page = c.get("/simple/granian-big/", headers={"Accept": JSON_V1})
        assert page.status_code == 200
        url = page.json()["files"][0]["url"]
        for attempt in range(3):  # the first fills the caches, the next take the fast lane
            r = c.get(url)
            assert r.status_code == 200, attempt
            assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(wheel.read_bytes()).hexdigest()
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["content-security-policy"].startswith("default-src 'none'")
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        part = c.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == wheel.read_bytes()[100:200]
        missing = c.get("/simple/no-such-granian-project/")
        assert missing.status_code == 404
        assert "No project named 'no-such-granian-project'" in missing.text
        assert missing.headers["x-frame-options"] == "DENY"


def test_twine_upload_then_uv_install(granian: AssayServer, tmp_path: Path) -> None:
    token = granian.quick_token("granian-publisher")
    built = build_project(tmp_path, "granian-demo", "1.0")
    result = twine_upload(granian, token, *built.files)
    assert result.returncode == 0, result.stdout + result.stderr
    target = tmp_path / "site"
    cmd = [UV, "pip", "install", "--no-cache", "--index-url", granian.simple, "--python", sys.executable]
    done = subprocess.run(
        [*cmd, "--target", str(target), "granian-demo==1.0"],
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "granian_demo" / "__init__.py").exists()


@pytest.mark.parametrize(
    ("flag", "says"),
    [("--proxy-headers", "--proxy-headers is uvicorn's"), ("--access-log", "without assay's masking of credentials")],
)
def test_what_granian_lacks_is_refused_at_start(tmp_path: Path, flag: str, says: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "assay", "serve", "--data-dir", str(tmp_path), "--server", "granian", flag],
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=60,
    )
    assert result.returncode != 0
    assert says in result.stderr
