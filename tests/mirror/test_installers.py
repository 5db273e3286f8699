"""Every installer, unchanged, with a mirror index as its only index (issue 12, item 5).

The upstream is the static PEP 740 index the verify tests use, holding a dependency chain
``i-top -> i-mid -> i-base`` whose every file is attested under the local Sigstore; the index
under test mirrors it with ``require = "attested"`` (its trust root: the local Sigstore's), so
what the installers see passed the provenance check on the server. ``uv sync`` with the mirror
as the project's default index, poetry with it as its primary source, and ``assay verify`` of a
lock and of a hashed requirements file made through the mirror: the provenance it fetches is
the upstream's, re-served by the mirror at its own Integrity API URL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from uv import find_uv_bin

from tests.mirror.conftest import github
from tests.support.dists import build_project
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer, client_environ
from tests.support.sigstore_authority import LocalSigstore
from tests.support.static_index import StaticIndex, provenance_document

UV = find_uv_bin()
POETRY = shutil.which("poetry", path=os.path.dirname(sys.executable))
CHAIN = {"i-base": (), "i-mid": ("i-base",), "i-top": ("i-mid",)}
REPOSITORY = "acme/installers"


@pytest.fixture(scope="module")
def chain(static: StaticIndex, authority: LocalSigstore, tmp_path_factory: pytest.TempPathFactory) -> StaticIndex:
    """The chain on the static index, wheel and sdist of each, every file attested."""
    tmp = tmp_path_factory.mktemp("chain")
    signer = github(REPOSITORY)
    for name, deps in CHAIN.items():
        built = build_project(tmp / name, name, "1.0", dependencies=deps)
        for path in built.files:
            entry = static.publish(name, "1.0", path.name, path.read_bytes())
            attestation = authority.attest(path.name, entry.sha256, signer[0])
            static.set_provenance(
                path.name, provenance_document([(signer[1].to_publisher(), [attestation.model_dump(mode="json")])])
            )
    return static


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def mirror(
    request: pytest.FixtureRequest,
    chain: StaticIndex,
    authority: LocalSigstore,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AssayServer]:
    tmp = tmp_path_factory.mktemp(f"installers-{request.param}")
    env = {"ASSAY_SIGSTORE_TRUST_ROOT": str(authority.trusted_root_path)}

    def started(database_url: str | None) -> AssayServer:
        server = AssayServer(tmp / "data", database_url=database_url, env=env).start()
        server.cli("index", "create", "up", "--mirror", chain.simple)
        policy = tmp / "policy.toml"
        policy.write_text('[provenance]\nrequire = "attested"\n')
        server.cli("policy", "set", "--index", "up", str(policy))
        return server

    if request.param == "sqlite":
        server = started(None)
        try:
            yield server
        finally:
            server.stop()
    else:
        with fresh_database() as url:
            server = started(url)
            try:
                yield server
            finally:
                server.stop()


def _project(tmp: Path, extra: str = "") -> Path:
    project = tmp / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1"\nrequires-python = ">=3.8"\ndependencies = ["i-top"]\n' + extra
    )
    return project


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, *, project_config: bool = False
) -> subprocess.CompletedProcess[str]:
    environ = client_environ(env)
    if project_config:
        # uv reads the project's [tool.uv] only when configuration files are discovered; the
        # user's own (XDG_CONFIG_HOME) is pointed into the test's directory instead.
        del environ["UV_NO_CONFIG"]
        environ["XDG_CONFIG_HOME"] = str(cwd / "xdg-config")
    result = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env=environ, timeout=300, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, " ".join(cmd) + "\n" + result.stdout + result.stderr
    return result


def _installed(venv: Path) -> dict[str, str]:
    found = {}
    for meta in venv.glob("lib/python*/site-packages/*.dist-info/METADATA"):
        fields = dict(line.split(": ", 1) for line in meta.read_text().splitlines() if ": " in line)
        found[fields["Name"]] = fields["Version"]
    return found


def test_uv_sync_with_the_mirror_as_the_default_index(mirror: AssayServer, tmp_path: Path) -> None:
    url = mirror.url + "/up/simple/"
    project = _project(tmp_path, f'\n[[tool.uv.index]]\nname = "assay"\nurl = "{url}"\ndefault = true\n')
    _run([UV, "sync", "--no-cache", "--python", sys.executable], project, project_config=True)
    assert {"i-top": "1.0", "i-mid": "1.0", "i-base": "1.0"}.items() <= _installed(project / ".venv").items()
    lock = (project / "uv.lock").read_text()
    assert f'registry = "{url}"' in lock or f'registry = "{url.rstrip("/")}"' in lock
    assert "/up/files/mirror/" in lock


def test_poetry_lock_and_install_through_the_mirror(mirror: AssayServer, tmp_path: Path) -> None:
    """Poetry reads a source's simple pages ("legacy" repository: PEP 503 / 691), never the
    JSON API, and with a primary source asks no other index."""
    assert POETRY is not None, "poetry is one of the test extras (pyproject.toml)"
    url = mirror.url + "/up/simple/"
    project = _project(
        tmp_path,
        "\n[tool.poetry]\npackage-mode = false\n"
        f'\n[[tool.poetry.source]]\nname = "assay"\nurl = "{url}"\npriority = "primary"\n',
    )
    env = {
        "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
        "POETRY_CONFIG_DIR": str(tmp_path / "poetry-config"),
        "POETRY_DATA_DIR": str(tmp_path / "poetry-data"),
        "POETRY_VIRTUALENVS_IN_PROJECT": "true",
        "POETRY_NO_INTERACTION": "1",
        # No keyring lookups for the source's credentials (there is no desktop session here).
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
    _run([POETRY, "lock"], project, env)
    lock = (project / "poetry.lock").read_text()
    for name in CHAIN:
        assert f'name = "{name}"' in lock
    assert f'url = "{url}"' in lock or f'url = "{url.rstrip("/")}"' in lock
    _run([POETRY, "install", "--no-root"], project, env)
    assert {"i-top": "1.0", "i-mid": "1.0", "i-base": "1.0"}.items() <= _installed(project / ".venv").items()


def _verify(tmp: Path, authority: LocalSigstore, *args: str) -> dict[str, object]:
    cmd = [
        sys.executable, "-m", "assay", "verify", *args, "--trust-root", str(authority.trusted_root_path),
        "--pins", str(tmp / ".provenance.toml"), "--cache-dir", str(tmp / "verify-cache"), "--tofu",
        "--format", "json",
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=client_environ(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    doc: dict[str, object] = json.loads(result.stdout)
    return doc


def _verdicts(doc: dict[str, object]) -> dict[str, str]:
    files = doc["files"]
    assert isinstance(files, list)
    return {f["filename"]: f["verdict"] for f in files}


def test_assay_verify_on_a_lock_and_requirements_made_through_the_mirror(
    mirror: AssayServer, authority: LocalSigstore, tmp_path: Path
) -> None:
    url = mirror.url + "/up/simple/"
    project = _project(tmp_path)
    _run([UV, "lock", "--default-index", url, "--no-cache", "--python", sys.executable], project)
    _run([UV, "export", "--format", "pylock.toml", "-o", "pylock.toml"], project)
    pylock = (project / "pylock.toml").read_text()
    assert "/up/files/mirror/" in pylock
    doc = _verify(project, authority, "pylock.toml")
    verdicts = _verdicts(doc)
    assert {name.split("-")[0] for name in verdicts} == {"i_base", "i_mid", "i_top"}, verdicts
    # TOFU: each package's identity, confirmed by its certificates, is pinned on first sight.
    assert set(verdicts.values()) == {"pinned"}, doc
    # The provenance assay verify checked is the one the mirror re-serves at its own URL.
    assert REPOSITORY in (project / ".provenance.toml").read_text()
    # A hashed requirements file compiled through the mirror, its files found there by hash.
    _run([UV, "pip", "compile", "--no-cache", "--generate-hashes", "--index-url", url, "pyproject.toml",
          "-o", "requirements.txt", "--python", sys.executable], project)  # fmt: skip
    doc = _verify(project, authority, "-r", "requirements.txt", "--index-url", url)
    # Now against those pins: every file verifies and matches.
    assert set(_verdicts(doc).values()) == {"verified"}, doc


def test_a_policy_change_shows_at_once_on_a_warm_page(mirror: AssayServer, tmp_path: Path) -> None:
    """A decided page is served again only while nothing it was decided from changed: a new
    policy is seen by the very next request (the page TTL here is the default, 600 s)."""
    json_accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    policy = tmp_path / "policy.toml"
    with mirror.client(index="up") as http:
        for _ in range(3):  # warm
            assert http.get("/simple/i-base/", headers=json_accept).json()["files"]
        try:
            policy.write_text('[provenance]\nrequire = "attested"\n[projects]\ndeny = ["i-base"]\n')
            mirror.cli("policy", "set", "--index", "up", str(policy))
            assert http.get("/simple/i-base/", headers=json_accept).json()["files"] == []
        finally:
            policy.write_text('[provenance]\nrequire = "attested"\n')
            mirror.cli("policy", "set", "--index", "up", str(policy))
        assert http.get("/simple/i-base/", headers=json_accept).json()["files"]


BOUND = 30  # serial_poll_seconds of the server below: far longer than the test waits


def test_postgresql_policy_set_reaches_a_listening_server_by_notify(chain: StaticIndex, tmp_path: Path) -> None:
    """On PostgreSQL a server keeps decided pages until a NOTIFY (or serial_poll_seconds):
    ``policy set`` sends one, so a warm page shows the new policy long before the bound."""
    with fresh_database() as url:
        server = AssayServer(tmp_path / "data", database_url=url, args=["--serial-poll-seconds", str(BOUND)]).start()
        try:
            server.cli("index", "create", "up", "--mirror", chain.simple)
            json_accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
            with server.client(index="up") as http:
                for _ in range(3):  # decided, then kept (the listener starts with the first lookup)
                    assert http.get("/simple/i-mid/", headers=json_accept).json()["files"]
                _wait_listening(url)
                assert http.get("/simple/i-mid/", headers=json_accept).json()["files"]
                policy = tmp_path / "policy.toml"
                policy.write_text('[projects]\ndeny = ["i-mid"]\n')
                server.cli("policy", "set", "--index", "up", str(policy))
                started = time.monotonic()
                while http.get("/simple/i-mid/", headers=json_accept).json()["files"]:
                    assert time.monotonic() - started < 5, "the policy's NOTIFY did not arrive"
                    time.sleep(0.05)
        finally:
            server.stop()


def _wait_listening(url: str) -> None:
    plain = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    deadline = time.monotonic() + 20
    with psycopg.connect(plain, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            ).fetchone()
            if row is not None and row[0] >= 1:
                return
            time.sleep(0.1)
    raise AssertionError("the server does not LISTEN")
