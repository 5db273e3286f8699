"""Issue 11: the uvicorn internals ``assay.web.protocol`` overrides, and ``fcntl``, are checked
rather than assumed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import uvicorn

from assay.storage import filelock
from assay.storage.db import Database
from assay.web.protocol import TESTED_UVICORN, UnsupportedUvicorn, check_uvicorn_version


def test_the_installed_uvicorn_is_a_tested_one() -> None:
    check_uvicorn_version()
    major, minor = (int(part) for part in uvicorn.__version__.split(".")[:2])
    assert (major, minor) in TESTED_UVICORN


@pytest.mark.parametrize("version", ["0.55.0", "0.53.9", "1.0.0", "not-a-version"])
def test_an_untested_uvicorn_is_refused_with_the_reason(version: str) -> None:
    with pytest.raises(UnsupportedUvicorn, match=rf"uvicorn {version} is installed.*assay.web.protocol"):
        check_uvicorn_version(version)


def test_serve_refuses_to_start_on_an_untested_uvicorn(tmp_path: Path) -> None:
    # A real `assay serve`, with uvicorn reporting a version it was not tested against.
    code = (
        "import sys, uvicorn; uvicorn.__version__ = '0.99.0'\n"
        "from assay.cli import main\n"
        "sys.argv = ['assay', 'serve', '--data-dir', sys.argv[1], '--port', '0']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "data")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "assay: error: uvicorn 0.99.0 is installed" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_without_fcntl_a_sqlite_write_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(f"sqlite:///{tmp_path / 'assay.db'}")
    db.migrate()
    monkeypatch.setattr(filelock, "_fcntl", None)  # what a platform without fcntl has
    with pytest.raises(filelock.FileLockUnavailable, match="use PostgreSQL"), db.write():
        pass
    db.dispose()
