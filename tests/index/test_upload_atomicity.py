"""An upload is atomic (issue 2, item 4): file, metadata and database row appear together or not
at all, also when the client goes away mid-stream and when the server process is SIGKILLed in
the middle of many uploads. Both backends.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import struct
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.index.helpers import JSON_V1, assert_not_listed
from tests.support.dists import make_wheel
from tests.support.postgres import fresh_database
from tests.support.s3 import S3Server
from tests.support.server import AssayServer
from tests.support.upload import basic, form_fields, multipart, upload

#: Also against blobs in an S3 bucket (issue 16; the ``index`` fixture in tests/conftest.py).
S3_BACKEND = True


@pytest.fixture(scope="module")
def token(index: AssayServer) -> str:
    return index.quick_token("atomic-owner")


def _wait(condition: object, timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
def test_client_disconnect_mid_stream_leaves_nothing(
    index: AssayServer, token: str, tmp_path: Path, unique: str, reset: bool
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0", extra_files={f"{unique.replace('-', '_')}/blob": os.urandom(3 << 20)})
    body, content_type = multipart(form_fields(wheel), ("content", wheel.name, wheel.read_bytes()))
    before = index.stored_files()
    host, port = index.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        f"POST /legacy/ HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nAuthorization: {basic(token)['Authorization']}\r\n\r\n".encode()
    )
    sock.sendall(body[: 2 << 20])
    # The server is mid-upload: bytes are in a staging file.
    _wait(
        lambda: len(index.staging_files()) > len([p for p in before if p.startswith(".staging/")]),
        what="the upload to reach staging",
    )
    if reset:  # an abortive close (RST), as when a client process dies
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    _wait(lambda: index.stored_files() == before, what="the staged upload to be discarded")
    assert_not_listed(index, unique)
    with index.client() as c:
        assert c.get("/simple/").status_code == 200
        # The same file uploads normally afterwards.
        assert upload(c, wheel, token).status_code == 200


# ---- concurrent uploads racing for the same names ----


def _race(index: AssayServer, token: str, files: list[Path]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(files))
    responses: list[httpx.Response | None] = [None] * len(files)

    def go(i: int) -> None:
        with index.client() as c:
            barrier.wait()
            responses[i] = upload(c, files[i], token)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None for r in responses)
    return [r for r in responses if r is not None]


def test_concurrent_identical_uploads_store_one_file(
    index: AssayServer, token: str, tmp_path: Path, unique: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    before = index.stored_files()
    responses = _race(index, token, [wheel] * 6)
    # PyPI: an identical re-upload is a success; whoever loses the race is told so.
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert sum("already present" not in r.text for r in responses) == 1
    with index.client() as c:
        files = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1}).json()["files"]
    assert [f["filename"] for f in files] == [wheel.name]
    added = sorted(set(index.stored_files()) - set(before))
    assert len(added) == 2  # one wheel, one metadata file
    assert not index.staging_files()


def test_concurrent_different_files_under_one_name(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    variants = []
    for i in range(5):
        (tmp_path / str(i)).mkdir()
        variants.append(
            make_wheel(tmp_path / str(i), unique, "1.0", extra_files={f"{unique.replace('-', '_')}/v": str(i).encode()})
        )
    assert len({v.name for v in variants}) == 1
    before = index.stored_files()
    responses = _race(index, token, variants)
    winners = [v for v, r in zip(variants, responses, strict=True) if r.status_code == 200]
    assert len(winners) == 1, [(r.status_code, r.text) for r in responses]
    for r in responses:
        if r.status_code != 200:
            assert r.status_code == 400
            assert "File already exists" in r.text
    with index.client() as c:
        [entry] = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1}).json()["files"]
        body = c.get(urljoin(f"{index.url}/simple/{unique}/", entry["url"])).content
    assert body == winners[0].read_bytes()
    assert len(set(index.stored_files()) - set(before)) == 2
    assert not index.staging_files()


def test_concurrent_first_uploads_create_one_project(
    index: AssayServer, token: str, tmp_path: Path, unique: str
) -> None:
    wheels = [make_wheel(tmp_path, unique, f"1.{i}") for i in range(5)]
    responses = _race(index, token, wheels)
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    with index.client() as c:
        doc = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1}).json()
        listed = [p["name"] for p in c.get("/simple/", headers={"Accept": JSON_V1}).json()["projects"]]
    assert sorted(doc["versions"]) == sorted(f"1.{i}" for i in range(5))
    assert listed.count(unique) == 1


# ---- SIGKILL in the middle of many uploads ----


@dataclass
class Attempt:
    path: Path
    status: int | None  # None: no answer (the server died)


#: Kill/restart cycles per backend (a short version of a soak test).
ITERATIONS = 8
THREADS = 3


@dataclass
class Backend:
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    #: (S3) the bucket and the server holding it, to list what is in it.
    s3: S3Server | None = None
    bucket: str = ""
    iterations: int = ITERATIONS


@pytest.fixture(params=["sqlite", "postgresql", "s3"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend()
    elif request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        bucket = s3.new_bucket()
        # Half the kill cycles: each one restarts a server, and the S3 half of the suite is kept
        # short (a multipart upload cut off is tests/index/test_s3_store.py's, deterministically).
        yield Backend(env=s3.env(bucket), s3=s3, bucket=bucket, iterations=ITERATIONS // 2)
    else:
        with fresh_database() as url:
            yield Backend(database_url=url)


def _uploader(
    server_url: str, token: str, directory: Path, tag: str, out: list[Attempt], stop: threading.Event
) -> None:
    n = 0
    with httpx.Client(base_url=server_url, timeout=30) as c:
        while not stop.is_set():
            n += 1
            size = random.randint(10_000, 1_500_000)
            wheel = make_wheel(directory, "crash-test", f"{tag}.{n}", extra_files={"crash_test/blob": os.urandom(size)})
            try:
                r = upload(c, wheel, token)
            except httpx.HTTPError:
                out.append(Attempt(wheel, None))
                return
            out.append(Attempt(wheel, r.status_code))


def test_sigkill_during_uploads_then_restart(tmp_path: Path, backend: Backend) -> None:
    data = tmp_path / "data"
    server = AssayServer(data, database_url=backend.database_url, env=backend.env, args=backend.args)
    attempts: list[Attempt] = []
    rng = random.Random(1234)
    token = ""
    try:
        for i in range(backend.iterations):
            server.start()
            if not token:
                token = server.quick_token("crasher")
            stop = threading.Event()
            results: list[list[Attempt]] = [[] for _ in range(THREADS)]
            workdir = tmp_path / f"iter{i}"
            workdir.mkdir()
            threads = [
                threading.Thread(target=_uploader, args=(server.url, token, workdir, f"{i}.{t}", results[t], stop))
                for t in range(THREADS)
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.15, 0.9))
            server.kill()
            stop.set()
            for t in threads:
                t.join(60)
            for r in results:
                attempts.extend(r)

        server.start()
        accepted = [a for a in attempts if a.status == 200]
        unknown = [a for a in attempts if a.status is None]
        refused = [a for a in attempts if a.status not in (200, None)]
        assert accepted, "no upload completed before the kills"
        assert unknown, "no kill landed during an upload"
        assert not refused, [(a.path.name, a.status) for a in refused]

        with server.client() as c:
            page_url = f"{server.url}/simple/crash-test/"
            doc = c.get(page_url, headers={"Accept": JSON_V1}).json()
            listed = {f["filename"]: f for f in doc["files"]}
            served_keys = set()
            # Every file the index lists is whole: bytes, hash, metadata file and its hash.
            for filename, entry in listed.items():
                url = urljoin(page_url, entry["url"])
                served_keys.add(httpx.URL(url).path.removeprefix("/files/"))
                local = next(a.path for a in attempts if a.path.name == filename)
                body = c.get(url).content
                assert body == local.read_bytes(), filename
                assert entry["hashes"]["sha256"] == hashlib.sha256(body).hexdigest()
                meta = c.get(url + ".metadata").content
                with zipfile.ZipFile(local) as zf:
                    assert meta == zf.read(f"crash_test-{filename.split('-')[1]}.dist-info/METADATA")
                assert entry["core-metadata"] == {"sha256": hashlib.sha256(meta).hexdigest()}
                served_keys.add(httpx.URL(url).path.removeprefix("/files/") + ".metadata")
            # Every upload that was answered 200 is there.
            assert {a.path.name for a in accepted} <= set(listed)
            # An upload cut off by the kill is either complete (committed just before it) or
            # absent; never listed without its file.
            assert set(listed) <= {a.path.name for a in accepted + unknown}
            # Nothing else is left on disk: start-up recovery removed what the killed process had
            # journaled but not committed (a blob renamed into place just before its row) and
            # its staging files.
            assert sorted(server.stored_files()) == sorted(served_keys)
            assert server.staging_files() == []
            if backend.s3 is not None:
                # S3 (issue 16): the bucket's own listing agrees: no object of an unanswered
                # upload that is not listed, nothing listed that is not stored; no upload left
                # in progress.
                listed_objects = backend.s3.objects(backend.bucket)
                assert listed_objects == sorted(f"blobs/{k}" for k in served_keys)
                client = backend.s3.client()
                assert client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", []) == []
            json_api = c.get("/pypi/crash-test/json").json()
            assert {u["filename"] for files in json_api["releases"].values() for u in files} == set(listed)

        # fsck agrees, with no grace period and nothing to repair: every row's blob and metadata
        # file is there and hashes right, and no blob lacks a row.
        report = json.loads(server.cli("fsck", "--json", "--grace", "0").stdout)
        assert report["files_checked"] == len(listed)
        assert report["problems"] == []
        with server.client() as c:
            assert {f["filename"] for f in c.get(page_url, headers={"Accept": JSON_V1}).json()["files"]} == set(listed)
        # And uploads work normally after the crashes.
        extra = make_wheel(tmp_path, "crash-test", "999")
        with server.client() as c:
            assert upload(c, extra, token).status_code == 200
    finally:
        server.stop()
