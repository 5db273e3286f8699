"""A real ``assay serve`` process on a loopback port, and the admin CLI next to it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.support.oidc_provider import clean_ci_environ

_URL = re.compile(r"assay: serving (https?://\S+?)/ ")


def client_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for the real clients (pip, uv, twine) that ignores this machine's own
    package-index configuration: the tests must talk to our index and nothing else."""
    env = clean_ci_environ()
    for name in list(env):
        if name.startswith(("PIP_", "UV_", "TWINE_")):
            del env[name]
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["UV_NO_CONFIG"] = "1"
    env["UV_NO_PROGRESS"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    env.update(extra or {})
    return env


class AssayServer:
    """``python -m assay serve`` in a subprocess; stdout/stderr collected in ``log``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.args = list(args)
        self.env = env or {}
        self.ca_file = ca_file
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self.url = ""
        self._reader: threading.Thread | None = None

    # -- lifecycle --
    def _storage_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args

    def start(self, timeout: float = 60) -> AssayServer:
        env = client_environ({"ASSAY_ACCESS_LOG": "true", **self.env})
        cmd = [sys.executable, "-m", "assay", "serve", *self._storage_args(), "--port", "0", *self.args]
        self.log = []
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        found = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.log.append(line.rstrip("\n"))
                match = _URL.search(line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not found.wait(timeout):
            self.stop()
            raise RuntimeError("assay serve did not start:\n" + "\n".join(self.log[-40:]))
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError("assay serve exited:\n" + "\n".join(self.log[-40:]))
            try:
                r = httpx.get(self.url + "/simple/", verify=str(self.ca_file) if self.ca_file else True, timeout=2)
                if r.status_code in (200, 401):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("assay serve never answered:\n" + "\n".join(self.log[-40:]))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, with no chance to clean up."""
        self.stop(signal.SIGKILL)

    # -- helpers --
    @property
    def simple(self) -> str:
        return self.url + "/simple/"

    @property
    def upload_url(self) -> str:
        return self.url + "/legacy/"

    def client(self, **kw: object) -> httpx.Client:
        verify = str(self.ca_file) if self.ca_file else True
        return httpx.Client(base_url=self.url, verify=verify, timeout=60, **kw)  # type: ignore[arg-type]

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "assay", "admin", *self._storage_args(), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, env=client_environ(), timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(
                f"assay admin {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def token(self, user: str, *projects: str, expires: str | None = None) -> str:
        args = ["token", "create", "--user", user]
        for p in projects:
            args += ["--project", p]
        if expires:
            args += ["--expires", expires]
        return self.admin(*args).stdout.strip()

    def ensure_user(self, user: str) -> None:
        result = self.admin("user", "create", user, check=False)
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise AssertionError(result.stderr)

    def access_log(self) -> list[str]:
        """uvicorn access-log lines: '<client> - "GET /path HTTP/1.1" 200'."""
        return [line for line in self.log if '" ' in line and "HTTP/1.1" in line]
