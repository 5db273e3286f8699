"""A private, throwaway PostgreSQL 15 cluster that a test may stop, restart and freeze.

The machine's cluster (tests/support/postgres.py) is shared by every engineer's tests and must
never be stopped; the database-outage proofs (issue 10, items 10 and 11) run against one of
these instead. ``initdb`` makes a cluster in a temporary directory owned by ``postgres`` (the
server refuses to run as root), with trust authentication on 127.0.0.1 only and a free port;
``pg_ctl`` starts and stops it as that user (``runuser -u postgres --``).

* ``stop()`` / ``start()``: an outage and the recovery from it (``pg_ctl stop -m immediate``:
  connections drop as in a crash, nothing waits for clients to leave);
* ``freeze()`` / ``thaw()``: SIGSTOP / SIGCONT to every process of the cluster (postmaster and
  backends), a hung database: TCP connections stay up and the kernel still accepts new ones,
  but nothing ever answers.

The cluster is removed when the context manager exits, thawed first if it was frozen.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["runuser", "-u", USER, "--", *cmd], capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.logfile = root / "server.log"
        self.port = _free_port()
        self.frozen = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``assay`` database (trust auth: no password)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/assay"

    def init(self) -> None:
        _as_postgres(
            str(BIN / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
            "--no-sync", "--encoding=UTF8", "--locale=C",
        )
        with (self.data / "postgresql.conf").open("a") as fh:
            # Loopback only, a private socket directory, and small: it runs next to everything.
            fh.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 100\n"
                "shared_buffers = 16MB\nfsync = off\nfull_page_writes = off\n"
            )
        self.start()
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE assay")

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={database} connect_timeout=5"

    def start(self) -> None:
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60", "start")

    def stop(self) -> None:
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def _pids(self) -> list[int]:
        """The postmaster and all its children (backends, checkpointer, ...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> None:
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = False

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self._dsn("assay")) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private cluster with an empty ``assay`` database; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="assay-pg-"))
    shutil.chown(root, USER, USER)
    root.chmod(0o700)
    pg = PrivatePostgres(root)
    try:
        pg.init()
        yield pg
    finally:
        if (pg.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                pg.thaw()
            with contextlib.suppress(Exception):
                pg.stop()
        shutil.rmtree(root, ignore_errors=True)
