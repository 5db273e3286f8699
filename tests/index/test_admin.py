"""`assay admin`: yank/unyank (PEP 592), project status (PEP 792), removing files and releases,
and the audit log that records every write (issue 2, item 6). Each command runs once per
backend in the module's scenario; the tests below check what each step left behind.

The commands run in-process through click's runner (the same command code; an interpreter per
step would dominate the run time); the audit listing runs as the installed `assay` command.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from tests.index.helpers import JSON_V1, parse
from tests.support.dists import make_sdist, make_wheel
from tests.support.server import AssayServer
from tests.support.upload import upload


@dataclass
class Snapshot:
    output: str
    simple: dict[str, Any]
    html: str
    api: dict[str, Any]
    release_api: dict[str, int]  # version -> status of /pypi/<p>/<v>/json
    stored: list[str]


@dataclass
class Scenario:
    name: str
    token_id: str
    files: dict[str, Path]
    started: dt.datetime
    steps: dict[str, Snapshot] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    audit_text: str = ""


def snapshot(index: AssayServer, name: str, output: str) -> Snapshot:
    with index.client() as c:
        simple = c.get(f"/simple/{name}/", headers={"Accept": JSON_V1}).json()
        html = c.get(f"/simple/{name}/", headers={"Accept": "text/html"}).text
        api = c.get(f"/pypi/{name}/json").json()
        release_api = {v: c.get(f"/pypi/{name}/{v}/json").status_code for v in ("1.0", "2.0", "3.0")}
    return Snapshot(output, simple, html, api, release_api, index.stored_files())


@pytest.fixture(scope="module")
def scenario(index: AssayServer, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    tmp = tmp_path_factory.mktemp("admin")
    name = f"admin-demo-{secrets.token_hex(3)}"
    started = dt.datetime.now(dt.UTC)
    token = index.quick_token("admin-demo-owner")
    files = [
        make_wheel(tmp, name, "1.0"),
        make_sdist(tmp, name, "1.0"),
        make_wheel(tmp, name, "2.0"),
        make_wheel(tmp, name, "3.0"),
    ]
    with index.client() as c:
        for f in files:
            assert upload(c, f, token).status_code == 200
    s = Scenario(name, token.removeprefix("assay-").split("_")[0], {f.name: f for f in files}, started)
    s.steps["uploaded"] = snapshot(index, name, "")
    steps = [
        ("yank", ["yank", name, "2.0", "--reason", "broken <build>"]),
        ("unyank", ["unyank", name, "2.0"]),
        ("yank-no-reason", ["yank", name.upper(), "3.0"]),
        ("archived", ["project", "status", name, "archived", "--reason", "unmaintained"]),
        ("active", ["project", "status", name, "active"]),
        ("remove-file", ["remove-file", files[0].name]),
        ("remove-release", ["remove-release", name, "3.0"]),
    ]
    for label, args in steps:
        s.steps[label] = snapshot(index, name, index.cli(*args).stdout.strip())
    out = index.cli("audit", "--json", "--project", name).stdout
    s.audit = [json.loads(line) for line in out.splitlines()]
    # The text form through the installed command, as an operator runs it.
    s.audit_text = index.admin("audit", "--project", name).stdout
    return s


def _yanked(snap: Snapshot) -> dict[str, object]:
    """version -> the PEP 691 "yanked" value of its wheel."""
    return {f["filename"].split("-")[1]: f["yanked"] for f in snap.simple["files"] if f["filename"].endswith(".whl")}


def test_yank_with_reason_shows_in_every_format(scenario: Scenario) -> None:
    snap = scenario.steps["yank"]
    assert snap.output == f"yanked {scenario.name} 2.0"
    assert _yanked(snap) == {"1.0": False, "2.0": "broken <build>", "3.0": False}
    anchors = {text: attrs for attrs, text in parse(snap.html).anchors}
    wheel2 = next(f for f in anchors if "-2.0-" in f)
    assert anchors[wheel2]["data-yanked"] == "broken <build>"  # PEP 592
    assert "&lt;build&gt;" in snap.html
    [release] = snap.api["releases"]["2.0"]
    assert release["yanked"] is True
    assert release["yanked_reason"] == "broken <build>"
    assert snap.api["info"]["version"] == "3.0"
    assert snap.release_api["2.0"] == 200


def test_unyank_restores(scenario: Scenario) -> None:
    snap = scenario.steps["unyank"]
    assert snap.output == f"unyanked {scenario.name} 2.0"
    assert _yanked(snap) == {"1.0": False, "2.0": False, "3.0": False}
    assert "data-yanked" not in snap.html
    assert snap.api["releases"]["2.0"][0]["yanked"] is False
    assert snap.api["releases"]["2.0"][0]["yanked_reason"] is None


def test_yank_without_reason(scenario: Scenario) -> None:
    snap = scenario.steps["yank-no-reason"]
    assert _yanked(snap)["3.0"] is True  # PEP 691: true when there is no reason
    anchors = {text: attrs for attrs, text in parse(snap.html).anchors}
    assert anchors[next(f for f in anchors if "-3.0-" in f)]["data-yanked"] == ""
    # PyPI's latest skips yanked releases.
    assert snap.api["info"]["version"] == "2.0"


def test_status_set_and_unset(scenario: Scenario) -> None:
    archived = scenario.steps["archived"]
    assert archived.output == f"{scenario.name} is now archived"
    assert archived.simple["project-status"] == {"status": "archived", "reason": "unmaintained"}
    assert parse(archived.html).meta["pypi:project-status"] == "archived"
    active = scenario.steps["active"]
    assert active.simple["project-status"] == {"status": "active"}
    assert "pypi:project-status-reason" not in parse(active.html).meta


def test_remove_file(index: AssayServer, scenario: Scenario) -> None:
    before, after = scenario.steps["active"], scenario.steps["remove-file"]
    wheel = next(f for f in scenario.files if f.endswith("-1.0-py3-none-any.whl"))
    assert after.output == f"removed {wheel}"
    [entry] = [f for f in before.simple["files"] if f["filename"] == wheel]
    key = urljoin(f"/simple/{scenario.name}/", entry["url"]).removeprefix("/files/")
    # The blob and its metadata file are gone from disk ...
    assert {key, key + ".metadata"} <= set(before.stored)
    assert set(before.stored) - set(after.stored) == {key, key + ".metadata"}
    # ... and from every page; the sdist of the same release stays, and so does the version.
    assert wheel not in [f["filename"] for f in after.simple["files"]]
    assert wheel not in after.html
    assert wheel not in json.dumps(after.api)
    assert "1.0" in after.simple["versions"]
    with index.client() as c:
        assert c.get(f"/files/{key}").status_code == 404
        assert c.get(f"/files/{key}.metadata").status_code == 404


def test_remove_release(index: AssayServer, scenario: Scenario) -> None:
    before, after = scenario.steps["remove-file"], scenario.steps["remove-release"]
    assert after.output == f"removed {scenario.name} 3.0 (1 files)"
    assert "3.0" not in after.simple["versions"]
    assert not [f for f in after.simple["files"] if "-3.0" in f["filename"]]
    assert "3.0" not in after.api["releases"]
    assert after.release_api["3.0"] == 404
    gone = set(before.stored) - set(after.stored)
    assert len(gone) == 2  # the 3.0 wheel and its metadata file
    assert all("-3.0-" in path for path in gone)
    with index.client() as c:
        for path in gone:
            assert c.get(f"/files/{path}").status_code == 404


def test_every_write_is_in_the_audit_log(scenario: Scenario) -> None:
    events = scenario.audit
    actions = [e["action"] for e in events]
    assert actions == [
        "project:create",
        "file:upload",
        "file:upload",
        "file:upload",
        "file:upload",
        "release:yank",
        "release:unyank",
        "release:yank",
        "project:status",
        "project:status",
        "file:remove",
        "release:remove",
    ]
    now = dt.datetime.now(dt.UTC)
    times = [dt.datetime.fromisoformat(e["time"]) for e in events]
    assert all(scenario.started - dt.timedelta(seconds=5) <= t <= now for t in times)
    assert times == sorted(times)
    for e in events:
        assert e["project"] == scenario.name
        if e["action"] in ("project:create", "file:upload"):
            # HTTP writes: who (the token's user), with which token, from where.
            assert e["actor"] == "user:admin-demo-owner"
            assert e["token_id"] == scenario.token_id
            assert e["remote_addr"] == "127.0.0.1"
        else:
            # CLI writes: the operating-system user who ran `assay admin`.
            assert e["actor"] == f"admin:{getpass.getuser()}"
            assert e["token_id"] is None
            assert e["remote_addr"] is None
    uploads = [e for e in events if e["action"] == "file:upload"]
    assert sorted(e["target"] for e in uploads) == sorted(scenario.files)
    assert all(e["details"]["sha256"] for e in uploads)
    yank = events[5]
    assert (yank["target"], yank["details"]["reason"]) == ("2.0", "broken <build>")
    status = events[8]
    assert status["details"] == {"from": "active", "to": "archived", "reason": "unmaintained"}
    removed = events[10]
    assert removed["target"].endswith("-1.0-py3-none-any.whl")
    assert events[11]["target"] == "3.0"
    # The human-readable form says the same.
    lines = scenario.audit_text.splitlines()
    assert len(lines) == len(events)
    assert f"file:upload {scenario.name}" in lines[1]
    assert f"token={scenario.token_id} from=127.0.0.1" in lines[1]


def test_admin_errors_are_one_line_messages(index: AssayServer, scenario: Scenario) -> None:
    cases = [
        (["yank", scenario.name, "9.9"], 1, f"project '{scenario.name}' has no release '9.9'"),
        (["yank", "no-such-project-q", "1.0"], 1, "no project named 'no-such-project-q'"),
        (["remove-file", "nothing-1.0.tar.gz"], 1, "no file named 'nothing-1.0.tar.gz'"),
        (["project", "status", scenario.name, "sleeping"], 2, "'sleeping' is not one of"),
    ]
    for args, code, message in cases:
        result = index.cli(*args, check=False)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr
        assert "Traceback" not in result.stderr


# ---- issue 10, item 18: which data directory, and never a new one by accident ----
def _run_admin(*args: str, env: dict[str, str] | None = None) -> Any:
    """``assay admin ARGS`` in this process (click's runner), with ``env`` as the only ASSAY_*
    variables, in the current directory."""
    import os

    from click.testing import CliRunner

    from assay.cli import main

    clean = {k: None for k in os.environ if k.startswith("ASSAY_")}
    return CliRunner().invoke(main, ["admin", *args], env={**clean, **(env or {})}, catch_exceptions=False)


def test_admin_refuses_a_data_directory_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    default = _run_admin("token", "list")
    assert default.exit_code == 1
    assert default.stderr.splitlines() == [
        f"assay: error: no data directory at {tmp_path / 'assay-data'} (from default): create one with "
        '"assay admin init" (or "assay serve"), or name an existing one'
    ]
    from_env = _run_admin("user", "create", "eve", env={"ASSAY_DATA_DIR": "elsewhere"})
    assert from_env.exit_code == 1
    assert f"no data directory at {tmp_path / 'elsewhere'} (from ASSAY_DATA_DIR)" in from_env.stderr
    config = tmp_path / "assay.toml"
    config.write_text('data-dir = "from-config"\n')
    from_config = _run_admin("--config", str(config), "audit")
    assert f"{tmp_path / 'from-config'} (from config file {config})" in from_config.stderr
    # An existing directory without a database is no index either.
    (tmp_path / "empty").mkdir()
    empty = _run_admin("--data-dir", "empty", "fsck")
    assert empty.exit_code == 1
    assert f"no database in data directory {tmp_path / 'empty'} (from --data-dir)" in empty.stderr
    # Nothing was created anywhere: not ./assay-data, not the others, not a database file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assay.toml", "empty"]
    assert list((tmp_path / "empty").iterdir()) == []


def test_admin_init_creates_and_changes_say_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    init = _run_admin("init", env={"ASSAY_DATA_DIR": "idx"})
    assert init.exit_code == 0, init.output
    assert init.stderr == f"assay: using data directory {tmp_path / 'idx'} (from ASSAY_DATA_DIR)\n"
    created = _run_admin("--data-dir", "idx", "user", "create", "dora")
    assert created.exit_code == 0, created.output
    assert created.stdout == "created user dora\n"
    assert created.stderr == f"assay: using data directory {tmp_path / 'idx'} (from --data-dir)\n"
    # The same directory `assay serve` would use, resolved the same way: the config file's.
    config = tmp_path / "assay.toml"
    config.write_text(f'data_dir = "{tmp_path / "idx"}"\n')
    listed = _run_admin("user", "list", env={"ASSAY_CONFIG": str(config)})
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.startswith("dora\t")
    assert listed.stderr == ""  # reading changes nothing: no announcement


def test_admin_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    from tests.support.postgres import fresh_database

    with fresh_database() as url:
        result = _run_admin("--data-dir", str(tmp_path), "--database-url", url, "token", "list")
        assert result.exit_code == 1
        assert "has no assay schema" in result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert _run_admin("--data-dir", str(tmp_path), "--database-url", url, "init").exit_code == 0
        assert _run_admin("--data-dir", str(tmp_path), "--database-url", url, "token", "list").exit_code == 0


# ---- issue 10, item 13: an I/O or database failure is one line and exit status 1 ----
@pytest.fixture
def full_disk(tmp_path: Path) -> Any:
    """A 2 MiB tmpfs holding a fresh index with one user, then filled to the last byte.

    A reader keeps a transaction open meanwhile, as a running server does: the database and its
    WAL stay open, so a command connects fine and its write is what finds no room (the WAL
    cannot start over while a reader needs it, it must grow)."""
    import os
    import sqlite3
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        data = mount / "data"
        assert _run_admin("--data-dir", str(data), "init").exit_code == 0
        assert _run_admin("--data-dir", str(data), "user", "create", "fran").exit_code == 0
        reader = sqlite3.connect(data / "assay.db", isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM users").fetchone() == (1,)
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(fd)
        yield data
        reader.close()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_admin_on_a_full_disk_says_so_in_one_line(full_disk: Path) -> None:
    import subprocess
    import sys

    from tests.support.server import client_environ

    result = subprocess.run(
        [sys.executable, "-m", "assay", "admin", "--data-dir", str(full_disk), "token", "create", "--user", "fran"],
        capture_output=True, text=True, env=client_environ(), timeout=60,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"assay: using data directory {full_disk} (from --data-dir)"
    assert len(lines) == 2, lines
    assert lines[1].startswith("assay: error: "), lines
    assert "full" in lines[1] or "No space left" in lines[1], lines
    assert result.stdout == ""  # no token was printed: none was stored
