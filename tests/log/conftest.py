"""The Go oracle: golang.org/x/mod/sumdb/{tlog,note}, built once per test session.

Go and the x/mod sources come from Debian (`golang-go`, `golang-golang-x-mod-dev`, which .ci/run
installs); the build is offline, in GOPATH mode against /usr/share/gocode. A machine without
them FAILS these tests: the oracle is the proof that the formats are the real ones.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ORACLE_SOURCE = Path(__file__).parent / "oracle" / "main.go"
GOPATH = Path("/usr/share/gocode")
XMOD = GOPATH / "src" / "golang.org" / "x" / "mod" / "sumdb"
INSTALL = "apt-get install -y --no-install-recommends golang-go golang-golang-x-mod-dev"

Oracle = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    go = shutil.which("go")
    if go is None or not XMOD.is_dir():
        pytest.fail(f"the Go oracle needs Go and golang.org/x/mod from Debian: {INSTALL}")
    work = tmp_path_factory.mktemp("oracle")
    binary = work / "oracle"
    env = {
        **os.environ,
        "GO111MODULE": "off",  # GOPATH mode: x/mod comes from Debian's /usr/share/gocode
        "GOPATH": str(GOPATH),
        "GOCACHE": str(work / "cache"),
        "GOFLAGS": "",
        "GOPROXY": "off",  # never the network
        "CGO_ENABLED": "0",
    }
    build = subprocess.run(
        [go, "build", "-o", str(binary), ORACLE_SOURCE.name],
        cwd=ORACLE_SOURCE.parent, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"building the Go oracle failed:\n{build.stderr}")

    def ask(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        run = subprocess.run(
            [str(binary)], input=json.dumps(requests), capture_output=True, text=True, timeout=120, check=False
        )
        assert run.returncode == 0, run.stderr
        answers: list[dict[str, Any]] = json.loads(run.stdout)
        assert len(answers) == len(requests)
        return answers

    return ask
