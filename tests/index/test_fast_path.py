"""The read path's fast lane (issue 17, item 3; ``assay.index.fastpath``).

A cache hit of a simple page or a file is answered in front of the whole middleware stack.
These tests call the real application of a real server's data directory in this process (no
socket: what is compared is the ASGI messages, headers in order) and prove two things for
each kind of request: the lane is taken (or, for the requests it must leave to the routes, not
taken), and its answer is message for message the one the full stack gives the same request.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from assay.app.asgi import create_app
from assay.config import load_settings
from assay.index.fastpath import ReadFastPath
from tests.index.helpers import JSON_V1, upload_and_locate
from tests.support.dists import make_sdist, make_wheel
from tests.support.server import AssayServer

NAME = "fast-demo"
Message = dict[str, Any]


@dataclass
class Served:
    data_dir: Path
    wheel: str  # path below the site root
    sdist: str
    big: str  # a wheel above filesend.SMALL_FILE: sent from the disk on each request


@pytest.fixture(scope="module")
def served(sqlite_index: AssayServer, tmp_path_factory: pytest.TempPathFactory) -> Served:
    tmp = tmp_path_factory.mktemp("fast")
    token = sqlite_index.quick_token("fast-owner")
    wheel = make_wheel(tmp, NAME, "1.0")
    sdist = make_sdist(tmp, NAME, "1.0")
    big = make_wheel(tmp, NAME, "2.0", extra_files={"fast_demo/blob.bin": os.urandom(400_000)})
    sqlite_index.cli("index", "create", "fastteam")
    urls = upload_and_locate(sqlite_index, token, NAME, [wheel, sdist, big])
    return Served(sqlite_index.data_dir, urls[wheel.name], urls[sdist.name], urls[big.name])


def _app(served: Served, **settings: object) -> tuple[Starlette, ReadFastPath]:
    app = create_app(load_settings({"data_dir": str(served.data_dir), **settings}))
    lane = app.build_middleware_stack()
    assert isinstance(lane, ReadFastPath)
    return app, lane


@pytest.fixture(scope="module")
def app(served: Served) -> Iterator[tuple[Starlette, ReadFastPath]]:
    app, lane = _app(served)
    yield app, lane
    app.state.services.close()


def _scope(path: str, method: str = "GET", headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    path, _, query = path.partition("?")
    sent = {"host": "127.0.0.1:8000", "accept": "text/html", "user-agent": "tests", **(headers or {})}
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in sent.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        **extra,
    }


async def _call(app: Starlette, asgi: Any, scope: dict[str, Any], body: bytes = b"") -> list[Message]:
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await asgi({**scope, "app": app}, receive, send)
    return messages


def _compare(
    app: Starlette, lane: ReadFastPath, scope: dict[str, Any], *, taken: bool, body: bytes = b""
) -> list[Message]:
    """Ask twice through the lane (the first fills the caches) and once through the full
    stack; the three answers must be the same, and the second took the lane iff ``taken``."""

    async def run() -> tuple[list[Message], list[Message], list[Message], int]:
        first = await _call(app, lane, scope, body)
        hits = lane.hits
        second = await _call(app, lane, scope, body)
        reference = await _call(app, lane.app, scope, body)
        return first, second, reference, lane.hits - hits

    first, second, reference, hits = asyncio.run(run())
    for _ in range(2):
        # A commit by any process between the first two (the module's server finishing its
        # uploads' work) makes every kept serial unknown (index.serials is conservative), and
        # the second then goes to the route too: such a pair is asked again.
        if hits or not taken:
            break
        first, second, reference, hits = asyncio.run(run())
    assert hits == (1 if taken else 0)
    assert second == reference
    assert first == reference
    return reference


def _headers(messages: list[Message]) -> dict[bytes, bytes]:
    return dict(messages[0]["headers"])


@pytest.mark.parametrize(
    ("path", "method", "accept"),
    [
        (f"/simple/{NAME}/", "GET", "text/html"),
        (f"/simple/{NAME}/", "GET", JSON_V1),
        (f"/simple/{NAME}/", "HEAD", "text/html"),
        ("/simple/", "GET", "text/html"),
        ("/fastteam/simple/", "GET", JSON_V1),
    ],
)
def test_cached_pages_take_the_lane_with_the_full_stacks_answer(
    app: tuple[Starlette, ReadFastPath], served: Served, path: str, method: str, accept: str
) -> None:
    answer = _compare(*app, _scope(path, method, {"accept": accept}), taken=True)
    headers = _headers(answer)
    assert answer[0]["status"] == 200
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"etag"].startswith(b'"')
    assert b"server" not in headers


@pytest.mark.parametrize("which", ["wheel", "sdist", "metadata", "big", "head big"])
def test_cached_files_take_the_lane_with_the_full_stacks_answer(
    app: tuple[Starlette, ReadFastPath], served: Served, which: str
) -> None:
    path = {
        "wheel": served.wheel,
        "sdist": served.sdist,
        "metadata": served.wheel + ".metadata",
        "big": served.big,
        "head big": served.big,
    }[which]
    answer = _compare(*app, _scope(path, "HEAD" if which.startswith("head") else "GET"), taken=True)
    assert answer[0]["status"] == 200
    headers = _headers(answer)
    assert headers[b"cache-control"] == b"public, max-age=31536000, immutable"
    assert headers[b"content-security-policy"].startswith(b"default-src 'none'")
    if which == "big":
        assert sum(len(m.get("body", b"")) for m in answer[1:]) == int(headers[b"content-length"]) > 400_000


def test_a_server_with_pathsend_is_handed_the_large_files_path(
    app: tuple[Starlette, ReadFastPath], served: Served
) -> None:
    """The ASGI pathsend extension (granian offers it): the lane and the route alike send the
    file by its path, once the headers are out; small files are still sent from memory."""
    scope = _scope(served.big, extensions={"http.response.pathsend": {}})
    answer = _compare(*app, scope, taken=True)
    assert [m["type"] for m in answer] == ["http.response.start", "http.response.pathsend"]
    path = Path(answer[1]["path"])
    assert path.is_file()
    assert path.stat().st_size == int(_headers(answer)[b"content-length"])
    small = _compare(*app, _scope(served.wheel, extensions={"http.response.pathsend": {}}), taken=True)
    assert [m["type"] for m in small] == ["http.response.start", "http.response.body"]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("if-none-match", 304),
        ("range", 206),
        ("query", 200),
        ("not canonical", 301),
        ("body too large", 413),
        ("no such project", 404),
        ("unknown index", 404),
        ("proof", 200),  # the transparency-log receipt route, before /files/{key:path}
        ("bad key", 404),  # never in the file cache: the route's check_key refuses it
    ],
)
def test_requests_the_routes_answer_leave_the_lane(
    app: tuple[Starlette, ReadFastPath], served: Served, kind: str, status: int
) -> None:
    etag = _headers(_compare(*app, _scope(served.wheel), taken=True))[b"etag"].decode()
    scope, body = {
        "if-none-match": (_scope(served.wheel, headers={"if-none-match": etag}), b""),
        "range": (_scope(served.big, headers={"range": "bytes=0-9"}), b""),
        "query": (_scope(f"/simple/{NAME}/?format=application/vnd.pypi.simple.v1+json"), b""),
        "not canonical": (_scope("/simple/Fast_Demo/"), b""),
        "body too large": (_scope(f"/simple/{NAME}/", headers={"content-length": str(2 << 20)}), b"x"),
        "no such project": (_scope("/simple/no-such-fast-project/"), b""),
        "unknown index": (_scope("/nosuchteam/simple/"), b""),
        "proof": (_scope(served.wheel + ".tlog-proof"), b""),
        "bad key": (_scope(served.wheel.replace("/files/", "/files/../", 1)), b""),
    }[kind]
    answer = _compare(*app, scope, taken=False, body=body)
    assert answer[0]["status"] == status


def test_the_host_check_and_a_private_index_stay_in_force(served: Served) -> None:
    checked, lane = _app(served, allowed_hosts=("index.internal",))
    try:
        refused = _compare(checked, lane, _scope(f"/simple/{NAME}/", headers={"host": "evil.internal"}), taken=False)
        assert refused[0]["status"] == 400
        assert b"Host not allowed" in refused[1]["body"]
        twice = {"host": "index.internal"}
        scope = _scope(f"/simple/{NAME}/", headers=twice)
        scope["headers"].append((b"host", b"evil.internal"))
        assert _compare(checked, lane, scope, taken=False)[0]["status"] == 400
        allowed = _compare(checked, lane, _scope(f"/simple/{NAME}/", headers=twice), taken=True)
        assert allowed[0]["status"] == 200
    finally:
        checked.state.services.close()
    private, lane = _app(served, private=True)
    try:
        for path in (f"/simple/{NAME}/", served.wheel):
            assert _compare(private, lane, _scope(path), taken=False)[0]["status"] == 401
    finally:
        private.state.services.close()


def test_a_large_file_gone_from_the_disk_is_the_routes_500(
    app: tuple[Starlette, ReadFastPath], served: Served
) -> None:
    """The lane opens a large file only once it has decided; a blob missing from the disk
    then hands the request to the full stack, whose route answers the 500 (with the security
    headers), as it does without the lane."""
    _compare(*app, _scope(served.big), taken=True)
    blob = served.data_dir / "files" / served.big.removeprefix("/files/")
    moved = blob.with_name(blob.name + ".away")
    blob.rename(moved)
    try:
        answer = _compare(*app, _scope(served.big), taken=False)
    finally:
        moved.rename(blob)
    assert answer[0]["status"] == 500
    assert _headers(answer)[b"x-content-type-options"] == b"nosniff"
