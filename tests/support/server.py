"""A real ``assay serve`` process on a loopback port, and the admin CLI next to it."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from assay.config import load_settings
from assay.storage.blobs import BlobStore
from assay.storage.db import Database
from tests.support.oidc_provider import clean_ci_environ
from tests.support.postgres import fresh_database
from tests.support.s3 import S3Server

_URL = re.compile(r"assay: serving (https?://\S+?)/ ")


def client_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for the real clients (pip, uv, twine) that ignores this machine's own
    package-index configuration: the tests must talk to our index and nothing else."""
    env = clean_ci_environ()
    for name in list(env):
        if name.startswith(("PIP_", "UV_", "TWINE_")):
            del env[name]
    # A machine-wide CA bundle variable would override the test CA a client is given (requests
    # lets REQUESTS_CA_BUNDLE win over a session's verify=, which breaks twine --cert).
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env.pop(name, None)
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
        port: int | None = 0,
    ) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.args = list(args)
        self.env = env or {}
        self.ca_file = ca_file
        #: The --port flag to pass; None passes none (the port then comes from env or config).
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self.url = ""
        self._reader: threading.Thread | None = None
        self._db: Database | None = None

    # -- lifecycle --
    def _storage_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        # The blob store comes as a flag too, so the in-process ``cli`` reaches the same one.
        for name in ("blob_store", "s3_endpoint_url"):
            if value := self.env.get(f"ASSAY_{name.upper()}"):
                args += [f"--{name.replace('_', '-')}", value]
        return args

    def start(self, timeout: float = 60) -> AssayServer:
        # serial_poll_seconds 0: a PostgreSQL server asks for the serial on every request, as
        # tests that change the database from this process (admin functions, the CLI) and read
        # at once expect; issue 17 lets another server's change take up to that bound (usually
        # milliseconds: NOTIFY), which tests/index/test_serial_freshness.py proves with its own.
        env = client_environ({"ASSAY_ACCESS_LOG": "true", "ASSAY_SERIAL_POLL_SECONDS": "0", **self.env})
        port = ["--port", str(self.port)] if self.port is not None else []
        cmd = [sys.executable, "-m", "assay", "serve", *self._storage_args(), *port, *self.args]
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
            assert self.proc is not None
            assert self.proc.stdout is not None
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
                r = httpx.get(self.url + "/simple/", verify=self.verify, timeout=2)
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
        if self._db is not None:
            self._db.dispose()
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

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies this server's certificate with (the test CA, if any)."""
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True

    def client(self, *, index: str | None = None, **kw: object) -> httpx.Client:
        """An httpx client for the server (``index``: based at that named index's ``/<index>``)."""
        base = self.url + (f"/{index}" if index else "")
        return httpx.Client(base_url=base, verify=self.verify, timeout=60, **kw)  # type: ignore[arg-type]

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "assay", "admin", *self._storage_args(), *args]
        result = subprocess.run(
            cmd, capture_output=True, text=True, env=client_environ(self.env), timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"assay admin {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``assay admin ARGS`` run in this process (click's runner: the same command code as
        ``admin()``, without starting an interpreter per call). Same result shape as ``admin``."""
        from click.testing import CliRunner

        from assay.cli import main

        result = CliRunner().invoke(main, ["admin", *self._storage_args(), *args], catch_exceptions=False)
        completed = subprocess.CompletedProcess(
            ["assay", "admin", *args], result.exit_code, result.stdout, result.stderr
        )
        if check and result.exit_code != 0:
            raise AssertionError(
                f"assay admin {' '.join(args)} failed ({result.exit_code}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return completed

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

    def stored_files(self) -> list[str]:
        """Every blob in the store (a directory or a bucket) and every staging file (as
        ``.staging/<name>``): what an upload left behind."""
        blobs = self.blobs()
        published = [b.key for b in blobs.iter_blobs()]
        return sorted(published + [f".staging/{name}" for name, _ in blobs.staging.entries()])

    def staging_files(self) -> list[str]:
        return [p for p in self.stored_files() if p.startswith(".staging/")]

    def audit(self, *args: str) -> list[dict[str, object]]:
        """``assay admin audit --json`` as a list of events, oldest first."""
        import json

        out = self.admin("audit", "--json", "--limit", "100000", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    # -- in-process administration: the same functions `assay admin` calls, on the same
    # database, without starting a Python process per step (for test set-up; the CLI itself
    # is tested through the command) --
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings().resolved_database_url)
        return self._db

    def settings(self):
        """The settings the server runs with, as far as storage goes (its env and flags)."""
        env = {k: v for k, v in self.env.items() if k.startswith("ASSAY_")}
        return load_settings({"data_dir": str(self.data_dir), "database_url": self.database_url}, environ=env)

    def blobs(self) -> BlobStore:
        from assay.storage.stores import blob_store

        return blob_store(self.settings())

    def quick_user(self, user: str) -> None:
        from assay.admin import AdminError, accounts

        try:
            accounts.create_user(self.db(), user, actor="admin:tests")
        except AdminError as exc:
            if "already exists" not in str(exc):
                raise

    def quick_token(self, user: str, *projects: str, expires: dt.timedelta | None = None) -> str:
        """A token for ``user`` (created if missing), as `assay admin token create` makes it."""
        from assay.admin import accounts

        self.quick_user(user)
        issued = accounts.create_token(
            self.db(), username=user, projects=list(projects) or None, expires_in=expires,
            description="tests", prefix="assay-", actor="admin:tests",
        )
        return issued.token

    def access_log(self) -> list[str]:
        """uvicorn access-log lines: '<client> - "GET /path HTTP/1.1" 200'."""
        return [line for line in self.log if '" ' in line and "HTTP/1.1" in line]


def serve_on(
    tmp: Path, backend: str, args: Sequence[str] = (), s3: S3Server | None = None
) -> Iterator[AssayServer]:
    """A started server on SQLite in ``tmp``, or on a fresh PostgreSQL database, or on SQLite
    with its blobs in a fresh bucket of ``s3`` (backend "s3"), stopped (and the database
    dropped) afterwards: the body of every module-scoped server fixture."""
    if backend == "s3":
        assert s3 is not None, "the s3 backend needs the s3 fixture"
        server = AssayServer(tmp, args=args, env=s3.env(s3.new_bucket())).start()
        try:
            yield server
        finally:
            server.stop()
    elif backend == "postgresql":
        with fresh_database() as url:
            server = AssayServer(tmp, database_url=url, args=args).start()
            try:
                yield server
            finally:
                server.stop()
    else:
        server = AssayServer(tmp, args=args).start()
        try:
            yield server
        finally:
            server.stop()
