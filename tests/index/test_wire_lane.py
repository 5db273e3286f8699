"""Answers written on the wire (issue 17, item 3; ``assay.web.wire``, ``assay.web.protocol``).

A cache hit of a page or a file is written to the connection by assay's uvicorn protocol
itself, below ASGI, and a large file goes out with ``sendfile(2)``. These tests run real
uvicorn servers with assay's configuration (``cli.serve.uvicorn_config``) in this process, on
loopback ports, so that they can read the lane's counters, and talk raw HTTP/1.1 to them over
sockets. The reference is a second server on the same data with the lane off (setting
``wire_answers`` false): every answer from it comes through uvicorn's ASGI cycle.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from assay.app.asgi import create_app
from assay.cli.serve import uvicorn_config
from assay.config import load_settings
from assay.index.fastpath import ReadFastPath
from tests.index.helpers import JSON_V1, upload_and_locate
from tests.support.dists import make_sdist, make_wheel
from tests.support.server import AssayServer
from tests.support.tls import TLS

NAME = "wire-demo"
BIG = 6 * 1024 * 1024  # well above the socket buffers: the sender must wait for the client


@dataclass
class Served:
    data_dir: Path
    wheel: str
    sdist: str
    big: str
    big_sha256: str


@pytest.fixture(scope="module")
def served(sqlite_index: AssayServer, tmp_path_factory: pytest.TempPathFactory) -> Served:
    tmp = tmp_path_factory.mktemp("wire")
    token = sqlite_index.quick_token("wire-owner")
    wheel = make_wheel(tmp, NAME, "1.0")
    sdist = make_sdist(tmp, NAME, "1.0")
    big = make_wheel(tmp, NAME, "2.0", extra_files={"wire_demo/blob.bin": os.urandom(BIG)})
    urls = upload_and_locate(sqlite_index, token, NAME, [wheel, sdist, big])
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    return Served(sqlite_index.data_dir, urls[wheel.name], urls[sdist.name], urls[big.name], digest)


class InProcessServer:
    """uvicorn with assay's configuration on a loopback port, in a thread of this process."""

    def __init__(self, data_dir: Path, **settings: object) -> None:
        self.settings = load_settings({"data_dir": str(data_dir), "access_log": True, **settings})
        self.app = create_app(self.settings)
        config = uvicorn_config(self.settings, self.app, configure_logging=False)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert self._thread.is_alive(), "the server stopped while starting"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        self._sock = sock

    @property
    def lane(self) -> ReadFastPath:
        lane = self.app.wire_lane  # type: ignore[attr-defined]
        assert isinstance(lane, ReadFastPath)
        return lane

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)
        self._sock.close()
        self.app.state.services.close()


@pytest.fixture(scope="module")
def servers(served: Served) -> Iterator[tuple[InProcessServer, InProcessServer]]:
    wired = InProcessServer(served.data_dir)
    reference = InProcessServer(served.data_dir, wire_answers=False)
    try:
        yield wired, reference
    finally:
        wired.stop()
        reference.stop()


# -- raw HTTP/1.1 --
@dataclass
class Answer:
    status_line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)

    def without_date(self) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
        return self.status_line, [(n, v) for n, v in self.headers if n != b"date"], self.body


def _request(path: str, method: str = "GET", headers: dict[str, str] | None = None, version: str = "1.1") -> bytes:
    sent = {"Host": "127.0.0.1", "Accept": "text/html", "User-Agent": "tests", **(headers or {})}
    lines = [f"{method} {path} HTTP/{version}", *(f"{k}: {v}" for k, v in sent.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class Reader:
    """Reads answers off one connection (each has a Content-Length, as all of these do)."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        self.buffer += chunk
        return bool(chunk)

    def answer(self, method: str = "GET") -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed before an answer: {self.buffer[:200]!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.split(b"\r\n")
        if status_line.startswith(b"HTTP/1.1 1"):  # 100 Continue: the answer follows
            return self.answer(method)
        headers = [(n.lower(), v) for n, _, v in (line.partition(b": ") for line in lines)]
        length = 0 if method == "HEAD" else int(dict(headers).get(b"content-length", b"0"))
        while len(self.buffer) < length:
            assert self._fill(), "connection closed in the middle of a body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(status_line, headers, body)

    def closed(self) -> bool:
        return not self.buffer and not self._fill()


def _connect(server: InProcessServer, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    return sock


def _ask(server: InProcessServer, request: bytes, method: str = "GET") -> Answer:
    with _connect(server) as sock:
        sock.sendall(request)
        return Reader(sock).answer(method)


def _wired_twice(server: InProcessServer, request: bytes, method: str = "GET") -> tuple[Answer, int]:
    """Ask once (filling the caches) and again; the second answer and how many requests the
    wire lane answered for it. A commit by any process in between (a server's start-up purge
    of expired stages) makes the kept serials unknown, so a pair that met one is asked again."""
    for _ in range(3):
        _ask(server, request, method)
        before = server.lane.wire_hits
        answer = _ask(server, request, method)
        if server.lane.wire_hits > before:
            break
    return answer, server.lane.wire_hits - before


# -- the tests --
@pytest.mark.parametrize(
    ("which", "method", "accept"),
    [
        ("page", "GET", "text/html"),
        ("page", "GET", JSON_V1),
        ("page", "HEAD", "text/html"),
        ("root", "GET", "text/html"),
        ("wheel", "GET", "text/html"),
        ("sdist", "GET", "text/html"),
        ("metadata", "GET", "text/html"),
        ("wheel", "HEAD", "text/html"),
        ("big", "GET", "text/html"),
        ("big", "HEAD", "text/html"),
    ],
)
def test_hits_are_written_on_the_wire_byte_for_byte(
    servers: tuple[InProcessServer, InProcessServer], served: Served, which: str, method: str, accept: str
) -> None:
    wired, reference = servers
    path = {
        "page": f"/simple/{NAME}/",
        "root": "/simple/",
        "wheel": served.wheel,
        "sdist": served.sdist,
        "metadata": served.wheel + ".metadata",
        "big": served.big,
    }[which]
    request = _request(path, method, {"Accept": accept})
    answer, wire_hits = _wired_twice(wired, request, method)
    expected, reference_hits = _wired_twice(reference, request, method)
    assert wire_hits == 1
    assert reference_hits == 0  # the lane is off there: the ASGI cycle answered
    assert answer.status_line == b"HTTP/1.1 200 OK"
    assert answer.without_date() == expected.without_date()
    assert answer.header(b"date") is not None
    if which == "big" and method == "GET":
        assert hashlib.sha256(answer.body).hexdigest() == served.big_sha256


def test_pipelined_requests_are_answered_in_order(
    servers: tuple[InProcessServer, InProcessServer], served: Served
) -> None:
    """Requests sent together, some the wire's (a page, a file by sendfile) and some the ASGI
    stack's (a 404, a conditional request): each answer whole, in the order asked."""
    wired, _ = servers
    page = f"/simple/{NAME}/"
    for path in (page, served.big, served.wheel):
        _ask(wired, _request(path))  # cached
    etag = _ask(wired, _request(served.wheel)).header(b"etag")
    assert etag is not None
    asked = [
        ("GET", _request(page), 200),
        ("GET", _request(served.big), 200),
        ("GET", _request("/simple/no-such-wire-project/"), 404),
        ("GET", _request(served.wheel, headers={"If-None-Match": etag.decode()}), 304),
        ("HEAD", _request(served.big, "HEAD"), 200),
        ("GET", _request(served.big), 200),
        ("GET", _request(page, headers={"Connection": "close"}), 200),
    ]
    before = wired.lane.wire_hits
    with _connect(wired) as sock:
        sock.sendall(b"".join(request for _, request, _ in asked))
        reader = Reader(sock)
        answers = [reader.answer(method) for method, _, _ in asked]
        assert reader.closed()  # Connection: close on the last
    assert [int(a.status_line.split()[1]) for a in answers] == [status for _, _, status in asked]
    assert hashlib.sha256(answers[1].body).hexdigest() == served.big_sha256
    assert hashlib.sha256(answers[5].body).hexdigest() == served.big_sha256
    assert answers[0].body == answers[6].body
    assert answers[6].header(b"connection") == b"close"
    assert wired.lane.wire_hits > before  # the first, at least, was written on the wire


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_slow_reader_gets_the_whole_file_and_a_leaver_leaks_nothing(
    servers: tuple[InProcessServer, InProcessServer], served: Served
) -> None:
    wired, _ = servers
    _ask(wired, _request(served.big))  # cached
    baseline = _open_fds()
    # Slow: a small receive buffer, read in small pieces with pauses, so the server's socket
    # fills and the sender waits for it to drain many times.
    with _connect(wired, rcvbuf=16 * 1024) as sock:
        sock.sendall(_request(served.big))
        reader = Reader(sock)
        time.sleep(0.3)
        while len(reader.buffer) < 256 * 1024:
            reader.buffer += sock.recv(8192)
            time.sleep(0.001)
        answer = reader.answer()
        assert hashlib.sha256(answer.body).hexdigest() == served.big_sha256
        # The connection is still usable after a file sent by sendfile.
        sock.sendall(_request(served.wheel))
        assert reader.answer().status_line == b"HTTP/1.1 200 OK"
    # A client that leaves in the middle of a file: the transfer ends, both descriptors close.
    for _ in range(3):
        with _connect(wired, rcvbuf=16 * 1024) as sock:
            sock.sendall(_request(served.big))
            sock.recv(65536)
    deadline = time.monotonic() + 10
    while _open_fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_fds() <= baseline
    again = _ask(wired, _request(served.big))
    assert hashlib.sha256(again.body).hexdigest() == served.big_sha256


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("query", 200),
        ("percent-encoded", 200),
        ("http/1.0", 200),
        ("range", 206),
        ("expect", 200),
        ("post", 405),
    ],
)
def test_requests_the_wire_leaves_to_the_asgi_stack(
    servers: tuple[InProcessServer, InProcessServer], served: Served, kind: str, status: int
) -> None:
    wired, _ = servers
    page = f"/simple/{NAME}/"
    _ask(wired, _request(page))
    _ask(wired, _request(served.big))
    request = {
        "query": _request(page + "?format=text/html"),
        "percent-encoded": _request(page.replace("wire-demo", "wire%2Ddemo")),
        "http/1.0": _request(page, version="1.0"),
        "range": _request(served.big, headers={"Range": "bytes=0-9"}),
        "expect": _request(page, headers={"Expect": "100-continue"}),
        "post": _request(page, "POST", {"Content-Length": "0"}),
    }[kind]
    before = wired.lane.wire_hits
    answer = _ask(wired, request)
    assert int(answer.status_line.split()[1]) == status
    assert wired.lane.wire_hits == before
    if kind == "range":
        assert len(answer.body) == 10


def test_a_wire_hit_is_in_the_access_log(
    servers: tuple[InProcessServer, InProcessServer], served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    wired, reference = servers
    path = f"/simple/{NAME}/"
    _ask(wired, _request(path))
    _ask(reference, _request(path))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        before = wired.lane.wire_hits
        _ask(wired, _request(path))
        assert wired.lane.wire_hits == before + 1
        _ask(reference, _request(path))
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(lines) == 2
    # The same line but for the client's port.
    assert [line.split(" - ", 1)[1] for line in lines] == [f'"GET {path} HTTP/1.1" 200'] * 2


def test_over_tls_files_go_through_the_encryption(served: Served, tls: TLS) -> None:
    """sendfile would bypass TLS: over TLS a large file is the ASGI stack's, while pages and
    small files are still written on the wire, through the transport (which encrypts)."""
    server = InProcessServer(served.data_dir, tls_cert=str(tls.cert_file), tls_key=str(tls.key_file))
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    try:
        for path, wire in ((f"/simple/{NAME}/", 1), (served.wheel, 1), (served.big, 0)):
            answers, hits = [], []
            for _ in range(2):  # the first fills the caches
                with context.wrap_socket(_connect(server), server_hostname="127.0.0.1") as sock:
                    before = server.lane.wire_hits
                    sock.sendall(_request(path))
                    answers.append(Reader(sock).answer())
                    hits.append(server.lane.wire_hits - before)
            assert hits[1] == wire, path
            assert answers[0].without_date() == answers[1].without_date()
        assert hashlib.sha256(answers[1].body).hexdigest() == served.big_sha256
    finally:
        server.stop()


def test_behind_a_proxy_the_forwarded_scheme_and_client_are_the_wires_too(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``proxy_headers``, uvicorn wraps the application in its ProxyHeadersMiddleware; the
    wire makes the same rewrite (scheme and client from a trusted proxy's X-Forwarded-*), so
    the page keyed by an https base and the access log's client are what the wrapper gives."""
    wired = InProcessServer(served.data_dir, proxy_headers=True)
    reference = InProcessServer(served.data_dir, proxy_headers=True, wire_answers=False)
    try:
        page = f"/simple/{NAME}/"
        # The https request first: were its scheme not rewritten, the wire would look for an
        # http page not rendered yet, and the pair would not be a wire hit.
        for forwarded in ({"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}, {}):
            request = _request(page, headers=forwarded)
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="uvicorn.access"):
                answer, wire_hits = _wired_twice(wired, request)
                expected, reference_hits = _wired_twice(reference, request)
            assert (wire_hits, reference_hits) == (1, 0)
            assert answer.without_date() == expected.without_date()
            clients = {r.getMessage().split(" - ", 1)[0].rsplit(":", 1)[0] for r in caplog.records}
            assert clients == {"203.0.113.9" if forwarded else "127.0.0.1"}
    finally:
        wired.stop()
        reference.stop()


def test_a_large_file_gone_from_the_disk_is_the_routes_500(
    servers: tuple[InProcessServer, InProcessServer], served: Served
) -> None:
    wired, _ = servers
    _ask(wired, _request(served.big))  # cached
    blob = served.data_dir / "files" / served.big.removeprefix("/files/")
    moved = blob.with_name(blob.name + ".away")
    blob.rename(moved)
    try:
        before = wired.lane.wire_hits
        answer = _ask(wired, _request(served.big))
    finally:
        moved.rename(blob)
    assert answer.status_line.startswith(b"HTTP/1.1 500 ")
    assert answer.header(b"x-content-type-options") == b"nosniff"
    assert wired.lane.wire_hits == before
    again = _ask(wired, _request(served.big))  # back on the disk: served again
    assert hashlib.sha256(again.body).hexdigest() == served.big_sha256
