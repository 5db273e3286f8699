"""``assay rebuild`` as a rebuilder runs it (a subprocess): in build's isolated environment,
whose build backend (flit_core) comes from the test index itself (no other index: pip's
find-links and configuration are cleared), and with ``--no-isolation``; exit status 0 for a
match, 1 for a mismatch, 2 without an identity token. Only the index's read path is involved
(no database logic of its own), so one SQLite server."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rebuilds.conftest import EPOCH, reproducible_project, unreproducible_project
from tests.support.server import AssayServer, serve_on
from tests.support.upload import upload


@pytest.fixture(scope="module")
def flit_core_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real flit_core wheel (the version the test extras installed here), fetched the way the
    test command installs everything: by pip from the configured package registry."""
    version = importlib.metadata.version("flit_core")
    dest = tmp_path_factory.mktemp("flit-core")
    got = subprocess.run(
        [sys.executable, "-m", "pip", "download", f"flit_core=={version}", "--no-deps", "--only-binary=:all:",
         "--dest", str(dest), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert got.returncode == 0, f"pip download flit_core=={version} failed: {got.stderr}"
    return next(dest.glob("flit_core-*.whl"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    yield from serve_on(tmp_path_factory.mktemp("rebuild-cli"), "sqlite")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ASSAY_", "SIGSTORE_"))}
    # Nothing but the index the command names: no find-links, no pip.conf.
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})
    return subprocess.run(
        [sys.executable, "-m", "assay", "rebuild", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_isolated_rebuild_with_the_backend_from_the_index(
    server: AssayServer, flit_core_wheel: Path, unique: str, tmp_path: Path
) -> None:
    token = server.quick_token("owner")
    with server.client() as http:
        assert upload(http, flit_core_wheel, token).status_code == 200
    # The release as its CI made it: built in isolation with the backend from this index (the
    # WHEEL file names the backend's version, so a rebuild needs the same one).
    dists = reproducible_project(tmp_path, unique, "1.0", index_url=server.simple)
    with server.client() as http:
        for f in (dists.sdist, dists.wheel):
            r = upload(http, f, token)
            assert r.status_code == 200, r.text
    done = _cli(unique, "1.0", "--repository-url", server.upload_url, "--build-index-url", server.simple, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rebuilt from {dists.sdist.name} (SOURCE_DATE_EPOCH={EPOCH})" in done.stdout
    assert f"{dists.wheel.name}: match" in done.stdout
    # The isolated environment did ask the index for its build backend.
    assert any("/simple/flit-core/" in line for line in server.access_log())

    # Without the index, the isolated environment has no flit_core to install: build fails.
    failed = _cli(
        unique,
        "1.0",
        "--repository-url",
        server.upload_url,
        "--build-index-url",
        server.url + "/nowhere/simple/",
        "--dry-run",
    )
    assert failed.returncode == 1
    assert "building a wheel from" in failed.stderr


def test_a_mismatch_exits_1_and_a_report_needs_a_token(server: AssayServer, unique: str, tmp_path: Path) -> None:
    dists = unreproducible_project(tmp_path, unique, "1.0")
    token = server.quick_token("owner")
    with server.client() as http:
        for f in (dists.sdist, dists.wheel):
            assert upload(http, f, token).status_code == 200
    done = _cli(unique, "1.0", "--repository-url", server.simple, "--no-isolation", "--dry-run")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{dists.wheel.name}: mismatch (index sha256:" in done.stdout
    assert ", rebuilt sha256:" in done.stdout
    refused = _cli(unique, "1.0", "--repository-url", server.simple, "--no-isolation")
    assert refused.returncode == 2
    assert "identity token is needed" in refused.stderr
    # The sigstore library's signer refuses a token that is not an OIDC identity token (before
    # it would reach the Sigstore instance), after the rebuild: nothing reported.
    garbage = _cli(unique, "1.0", "--repository-url", server.simple, "--no-isolation", "--identity-token", "x.y.z")
    assert garbage.returncode == 1
    assert "signing with Sigstore (production) failed" in garbage.stderr
    missing = _cli(unique, "9.0", "--repository-url", server.simple, "--dry-run")
    assert missing.returncode == 1
    assert "has no sdist" in missing.stderr
