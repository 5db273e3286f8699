"""``assay serve`` through the real command (issue 2, item 2): the URL it prints, settings from
flags > ASSAY_* env > TOML file, HTTPS, several workers, and SIGTERM during an upload.

Graceful shutdown and the worker tests use SQLite only: they exercise the process model, not
the database (the database is covered on both backends by the other modules).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import click
import httpx
import pytest
import trustme

from assay.config import Settings
from tests.support.dists import make_wheel, sha256
from tests.support.server import AssayServer, client_environ
from tests.support.upload import basic, form_fields, multipart, upload

#: A graceful stop: uvicorn re-raises SIGTERM after shutting down (exit status -15); the
#: multi-worker supervisor exits 0. A server that had to be SIGKILLed would show -9.
CLEAN_EXIT = {0, -signal.SIGTERM}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_cmd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `assay serve` expecting it to exit at once (a configuration error)."""
    return subprocess.run(
        [sys.executable, "-m", "assay", "serve", *args],
        capture_output=True,
        text=True,
        env=client_environ(env),
        timeout=60,
    )


def test_prints_the_url_it_listens_on_and_serves_there(tmp_path: Path) -> None:
    server = AssayServer(tmp_path / "data").start()
    try:
        banner = next(line for line in server.log if line.startswith("assay: serving "))
        assert re.fullmatch(
            r"assay: serving http://127\.0\.0\.1:(\d+)/ \(simple index http://127\.0\.0\.1:\1/simple/, "
            r"uploads http://127\.0\.0\.1:\1/legacy/\)",
            banner,
        ), banner
        with server.client() as c:
            assert c.get("/").status_code == 200
            assert c.get("/simple/").status_code == 200
        assert server.url.startswith("http://127.0.0.1:")
    finally:
        assert server.stop() in CLEAN_EXIT


def test_every_setting_is_a_flag_an_environment_variable_and_a_file_key() -> None:
    # Issue 2: every option is settable as flag, ASSAY_* env and file. The flag list is the
    # one `assay serve --help` shows; env and file keys come from the same Settings fields.
    result = subprocess.run(
        [sys.executable, "-m", "assay", "serve", "--help"],
        capture_output=True,
        text=True,
        env=client_environ({"COLUMNS": "200"}),
        timeout=60,
    )
    assert result.returncode == 0
    for f in fields(Settings):
        if f.name == "sources":
            continue  # informational: where the other settings came from
        flag = "--config" if f.name == "config_file" else "--" + f.name.replace("_", "-")
        assert re.search(rf"(^|\s){re.escape(flag)}[\s/=]", result.stdout), f"no {flag} flag"


#: Words that name the unit of a number in an option's help.
UNIT = re.compile(r"\b(seconds|bytes|bytes/s|MiB|days|processes|port number)\b")


def test_the_help_says_the_unit_of_every_number() -> None:
    # Issue 10, item 19: "--body-min-rate INTEGER  Default: 1024." left the reader guessing.
    from assay.cli.serve import serve

    numeric = [p for p in serve.params if isinstance(p, click.Option) and p.type == click.INT]
    assert len(numeric) >= 12
    for option in numeric:
        assert option.help is not None, option.opts
        assert UNIT.search(option.help), (option.opts, option.help)
    result = subprocess.run(
        [sys.executable, "-m", "assay", "serve", "--help"],
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=60,
    )
    assert "Default: 1024 bytes/s." in " ".join(result.stdout.split())


@pytest.fixture
def three_ports() -> tuple[int, int, int]:
    return free_port(), free_port(), free_port()


def test_port_precedence_flag_over_env_over_file(tmp_path: Path, three_ports: tuple[int, int, int]) -> None:
    file_port, env_port, flag_port = three_ports
    cfg = tmp_path / "assay.toml"
    cfg.write_text(f"port = {file_port}\nhost = '127.0.0.1'\n")
    cases = [
        # (flag, env, expected)
        (flag_port, {"ASSAY_PORT": str(env_port)}, flag_port),
        (None, {"ASSAY_PORT": str(env_port)}, env_port),
        (None, {}, file_port),
    ]
    for flag, env, expected in cases:
        server = AssayServer(tmp_path / "data", port=flag, args=["--config", str(cfg)], env=env).start()
        try:
            assert server.url == f"http://127.0.0.1:{expected}", (flag, env, server.url)
            assert httpx.get(server.simple, timeout=10).status_code == 200
        finally:
            server.stop()


def test_config_file_named_by_assay_config_and_a_setting_from_it(tmp_path: Path) -> None:
    # ASSAY_CONFIG names the file; the file sets max_upload_size, which the upload API enforces.
    cfg = tmp_path / "assay.toml"
    cfg.write_text("max_upload_size = 2000\naccess_log = true\n")
    server = AssayServer(tmp_path / "data", env={"ASSAY_CONFIG": str(cfg)}).start()
    try:
        token = server.quick_token("u")
        wheel = make_wheel(tmp_path, "cfgtest", "1.0", extra_files={"cfgtest/big.bin": os.urandom(4000)})
        with server.client() as c:
            r = upload(c, wheel, token)
        assert r.status_code == 413
        assert "The limit is 2000 bytes" in r.text
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"ASSAY_PORT": "http"}, "port (environment variable ASSAY_PORT)"),
        (("--tls-cert", "c.pem"), {}, "tls_cert and tls_key must be given together"),
        (("--workers", "0"), {}, "workers must be at least 1"),
        (("--config", "/nonexistent/assay.toml"), {}, "does not exist"),
    ],
)
def test_bad_settings_stop_the_command_with_a_message(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = serve_cmd("--data-dir", str(tmp_path / "d"), "--port", "0", *args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# ---- HTTPS ----


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_pem = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    return cert, key, ca_pem


def test_tls_serves_https_and_pip_installs_with_cert(tmp_path: Path, tls_files: tuple[Path, Path, Path]) -> None:
    cert, key, ca_pem = tls_files
    server = AssayServer(
        tmp_path / "data", args=["--tls-cert", str(cert), "--tls-key", str(key)], ca_file=ca_pem
    ).start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        token = server.quick_token("u")
        wheel = make_wheel(tmp_path, "tls-demo", "1.0")
        with server.client() as c:
            assert upload(c, wheel, token).status_code == 200
        # Plain HTTP on the TLS port is not served.
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.simple.replace("https://", "http://"), timeout=5).raise_for_status()
        # Without the CA the certificate is not trusted.
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.simple, timeout=5)
        target = tmp_path / "site"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-cache-dir",
                "--cert",
                str(ca_pem),
                "--index-url",
                server.simple,
                "--target",
                str(target),
                "tls-demo==1.0",
            ],
            capture_output=True,
            text=True,
            env=client_environ(),
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert (target / "tls_demo" / "__init__.py").exists()
    finally:
        server.stop()


# ---- several workers ----


_PID = re.compile(r"\[(\d+)\] 127\.0\.0\.1:\d+ - \"GET (\S+) HTTP/1\.1\" (\d+)")


def _served_by(server: AssayServer, path: str) -> str | None:
    for line in reversed(server.access_log()):
        match = _PID.search(line)
        if match and match.group(2) == path:
            return match.group(1)
    return None


def _read_from_every_worker(server: AssayServer, project: str, tag: str) -> Iterator[tuple[str, str]]:
    """GET the project page on fresh connections until two different worker processes have
    answered; yield (pid, body) for each request."""
    pids: set[str] = set()
    for i in range(400):
        path = f"/simple/{project}/?r={tag}{i}"
        response = httpx.get(server.url + path, timeout=10)  # a new connection each time
        assert response.status_code == 200
        deadline = time.monotonic() + 5
        pid = None
        while pid is None and time.monotonic() < deadline:
            pid = _served_by(server, path)
            if pid is None:
                time.sleep(0.01)
        assert pid is not None, f"no access-log line for {path}"
        pids.add(pid)
        yield pid, response.text
        if len(pids) >= 2:
            return
    raise AssertionError(f"only worker(s) {pids} answered 400 requests")


def test_two_workers_both_see_an_upload_at_once(tmp_path: Path) -> None:
    # Each worker keeps its own page cache; the cache is keyed by the project's serial in the
    # database, so a worker that rendered the page before the upload never serves it stale.
    server = AssayServer(tmp_path / "data", args=["--workers", "2", "--allowed-host", "127.0.0.1"]).start()
    try:
        token = server.quick_token("u")
        first = make_wheel(tmp_path, "multi-worker", "1.0")
        second = make_wheel(tmp_path, "multi-worker", "2.0")
        with server.client() as c:
            assert upload(c, first, token).status_code == 200
        before = list(_read_from_every_worker(server, "multi-worker", "a"))
        assert all(first.name in body and second.name not in body for _, body in before)
        with server.client() as c:
            assert upload(c, second, token).status_code == 200
        after = list(_read_from_every_worker(server, "multi-worker", "b"))
        assert len({pid for pid, _ in after}) == 2
        for pid, body in after:
            assert second.name in body, f"worker {pid} served a stale page"
    finally:
        assert server.stop() in CLEAN_EXIT


# ---- SIGTERM during an upload ----


def _start_slow_upload(server: AssayServer, wheel: Path, token: str) -> tuple[socket.socket, bytes]:
    """Open a connection and send the upload request's head; return the socket and the body."""
    body, content_type = multipart(form_fields(wheel), ("content", wheel.name, wheel.read_bytes()))
    host_port = server.url.removeprefix("http://")
    head = (
        f"POST /legacy/ HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nAuthorization: {basic(token)['Authorization']}\r\n\r\n"
    ).encode()
    host, port = host_port.split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(head)
    return sock, body


def _wait_for_staging(server: AssayServer) -> None:
    deadline = time.monotonic() + 20
    while not server.staging_files():
        assert time.monotonic() < deadline, "the upload never reached the staging area"
        time.sleep(0.02)


def _big_wheel(tmp_path: Path, name: str) -> Path:
    # Over 1 MiB of incompressible content, so the server stages bytes while the body is
    # still arriving (it writes in 1 MiB batches).
    return make_wheel(tmp_path, name, "1.0", extra_files={f"{name.replace('-', '_')}/blob.bin": os.urandom(3 << 20)})


@pytest.fixture
def graceful_server(tmp_path: Path) -> Iterator[AssayServer]:
    server = AssayServer(tmp_path / "data", env={"ASSAY_GRACEFUL_TIMEOUT": "3"}).start()
    yield server
    server.stop()


def test_sigterm_lets_a_slow_upload_finish_and_stores_it(graceful_server: AssayServer, tmp_path: Path) -> None:
    server = graceful_server
    token = server.quick_token("u")
    wheel = _big_wheel(tmp_path, "slow-finisher")
    sock, body = _start_slow_upload(server, wheel, token)
    with sock:
        cut = 2 << 20
        sock.sendall(body[:cut])
        _wait_for_staging(server)
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert server.proc.poll() is None, "the server exited with an upload in flight"
        for start in range(cut, len(body), 256 * 1024):  # the rest, slowly
            sock.sendall(body[start : start + 256 * 1024])
            time.sleep(0.05)
        response = sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert server.proc.wait(20) in CLEAN_EXIT
    assert server.staging_files() == []

    server.start()  # the same data directory: the upload was durably stored
    with server.client() as c:
        doc = c.get("/pypi/slow-finisher/json").json()
        [entry] = doc["urls"]
        assert entry["digests"]["sha256"] == sha256(wheel)
        assert c.get(entry["url"]).content == wheel.read_bytes()


def test_sigterm_rolls_back_an_upload_that_never_finishes(graceful_server: AssayServer, tmp_path: Path) -> None:
    server = graceful_server
    token = server.quick_token("u")
    wheel = _big_wheel(tmp_path, "never-finisher")
    sock, body = _start_slow_upload(server, wheel, token)
    with sock:
        sock.sendall(body[: 2 << 20])
        _wait_for_staging(server)
        assert server.proc is not None
        signalled = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        # Keep sending a trickle, never the whole body: after the graceful timeout (3 s) the
        # server gives up on it.
        position = 2 << 20
        while server.proc.poll() is None and time.monotonic() - signalled < 30:
            try:
                sock.sendall(body[position : position + 10])
            except OSError:
                break
            position += 10
            time.sleep(0.1)
    assert server.proc.wait(30) in CLEAN_EXIT
    assert time.monotonic() - signalled >= 2.5, "the server did not wait for the in-flight upload"
    assert server.stored_files() == [], "a cut-off upload left files behind"

    server.start()
    with server.client() as c:
        assert c.get("/pypi/never-finisher/json").status_code == 404
        assert c.get("/simple/never-finisher/").status_code == 404
