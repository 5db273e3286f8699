"""Files under /files/ and their PEP 658 metadata files (issue 2, item 3).

Files are immutable (a filename can never be reused, as on PyPI), so they carry a strong ETag
(the sha256) and ``immutable`` cache headers; HEAD, conditional and Range requests work; the
``.metadata`` file is the wheel's METADATA byte for byte (PEP 658) with the advertised hash
(PEP 714); nothing outside the store is reachable.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest

from assay.storage.blobs import FilesystemBlobStore
from tests.index.helpers import JSON_V1
from tests.support.dists import make_sdist, make_wheel, sha256
from tests.support.server import AssayServer
from tests.support.upload import raw_get, upload

#: Also against blobs in an S3 bucket (issue 16; the ``index`` fixture in tests/conftest.py).
S3_BACKEND = True


@dataclass
class Stored:
    wheel: Path
    sdist: Path
    wheel_url: str  # path below the site root
    sdist_url: str
    core_metadata_sha256: str


@pytest.fixture(scope="module")
def stored(index: AssayServer, tmp_path_factory: pytest.TempPathFactory) -> Stored:
    tmp = tmp_path_factory.mktemp("files")
    name = "files-demo"
    token = index.quick_token("files-owner")
    # Non-ASCII and CRLF in METADATA: served as uploaded, not re-encoded or re-wrapped.
    metadata = (
        "Metadata-Version: 2.1\r\nName: files-demo\r\nVersion: 1.0\r\n"
        "Summary: caf\u00e9 \u2615\r\nRequires-Python: >=3.8\r\n\r\nA description.\r\n"
    )
    wheel = make_wheel(tmp, name, "1.0", metadata=metadata.encode())
    sdist = make_sdist(tmp, name, "1.0")
    with index.client() as c:
        for f in (wheel, sdist):
            r = upload(c, f, token)
            assert r.status_code == 200, r.text
        doc = c.get(f"/simple/{name}/", headers={"Accept": JSON_V1}).json()
    base = f"{index.url}/simple/{name}/"
    urls = {f["filename"]: urljoin(base, f["url"]).removeprefix(index.url) for f in doc["files"]}
    [wheel_entry] = [f for f in doc["files"] if f["filename"] == wheel.name]
    return Stored(wheel, sdist, urls[wheel.name], urls[sdist.name], wheel_entry["core-metadata"]["sha256"])


def test_file_is_served_with_strong_etag_and_immutable_caching(index: AssayServer, stored: Stored) -> None:
    with index.client() as c:
        r = c.get(stored.wheel_url)
    assert r.status_code == 200
    assert r.content == stored.wheel.read_bytes()
    # A strong ETag (no W/): the file's sha256.
    assert r.headers["etag"] == f'"{sha256(stored.wheel)}"'
    cache = [d.strip() for d in r.headers["cache-control"].split(",")]
    assert "immutable" in cache
    assert "public" in cache
    assert any(d.startswith("max-age=") and int(d.split("=")[1]) >= 86400 * 365 for d in cache)
    assert r.headers["content-type"] == "application/octet-stream"
    assert int(r.headers["content-length"]) == stored.wheel.stat().st_size
    assert stored.wheel.name in r.headers["content-disposition"]


def test_head_gives_the_headers_and_no_body(index: AssayServer, stored: Stored) -> None:
    with index.client() as c:
        head = c.head(stored.sdist_url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == f'"{sha256(stored.sdist)}"'
    assert int(head.headers["content-length"]) == stored.sdist.stat().st_size
    assert "immutable" in head.headers["cache-control"]


def test_if_none_match_gives_304(index: AssayServer, stored: Stored) -> None:
    etag = f'"{sha256(stored.wheel)}"'
    with index.client() as c:
        r = c.get(stored.wheel_url, headers={"If-None-Match": etag})
        assert r.status_code == 304
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert c.get(stored.wheel_url, headers={"If-None-Match": '"0000"'}).status_code == 200


def test_range_requests(index: AssayServer, stored: Stored) -> None:
    data = stored.wheel.read_bytes()
    with index.client() as c:
        first = c.get(stored.wheel_url, headers={"Range": "bytes=0-9"})
        assert first.status_code == 206
        assert first.content == data[:10]
        assert first.headers["content-range"] == f"bytes 0-9/{len(data)}"
        # A suffix range: the zip's end of central directory, as a lazy wheel reader asks.
        tail = c.get(stored.wheel_url, headers={"Range": "bytes=-22"})
        assert tail.status_code == 206
        assert tail.content == data[-22:]
        middle = c.get(stored.wheel_url, headers={"Range": "bytes=100-"})
        assert middle.content == data[100:]
        beyond = c.get(stored.wheel_url, headers={"Range": f"bytes={len(data) + 10}-"})
        assert beyond.status_code == 416


def test_metadata_file_is_the_wheels_metadata_byte_for_byte(index: AssayServer, stored: Stored) -> None:
    with zipfile.ZipFile(stored.wheel) as zf:
        original = zf.read("files_demo-1.0.dist-info/METADATA")
    with index.client() as c:
        r = c.get(stored.wheel_url + ".metadata")
        head = c.head(stored.wheel_url + ".metadata")
    assert r.status_code == 200
    # PEP 658: the exact bytes of the distribution's METADATA file.
    assert r.content == original
    # PEP 714: the hash advertised as core-metadata is the hash of these bytes.
    assert hashlib.sha256(r.content).hexdigest() == stored.core_metadata_sha256
    assert r.headers["etag"] == f'"{stored.core_metadata_sha256}"'
    assert "immutable" in r.headers["cache-control"]
    assert head.status_code == 200
    assert head.content == b""


def test_sdist_has_no_metadata_file(index: AssayServer, stored: Stored) -> None:
    with index.client() as c:
        assert c.get(stored.sdist_url + ".metadata").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/files/",
        "/files/aa/bb/cccc/nothing-1.0-py3-none-any.whl",
        "/files/nothing.whl.metadata",
        "/files/.staging/",
        "/files/.staging/x.part",
        "/files/assay.db",
    ],
)
def test_unknown_paths_are_404(index: AssayServer, stored: Stored, path: str) -> None:
    with index.client() as c:
        r = c.get(path)
    assert r.status_code == 404
    assert r.text.strip() in ("No such file.", "Not Found")


@pytest.mark.parametrize(
    "path",
    [
        "/files/../assay.db",
        "/files/../../etc/passwd",
        "/files/%2e%2e/assay.db",
        "/files/%2E%2E%2Fassay.db",
        "/files/..%2fassay.db",
        "/files/..%5cassay.db",
        "/files/..\\assay.db",
        "/files//etc/passwd",
        "/files/%2fetc%2fpasswd",
        "/files/aa/../../assay.db",
        "/files/%00../assay.db",
        "/files/./../assay.db",
    ],
)
def test_path_traversal_is_404(index: AssayServer, stored: Stored, path: str) -> None:
    # Sent byte for byte (an HTTP client would normalize the dots away before sending).
    status, _reason, body = raw_get(index.url, path)
    assert status in (400, 404), (path, status)
    assert not body.startswith(b"SQLite format")
    assert b"root:" not in body
    # Also relative to a real file's directory.
    status, _reason, body = raw_get(index.url, stored.wheel_url.rsplit("/", 1)[0] + "/" + path.removeprefix("/files/"))
    assert status in (400, 404), (path, status)
    assert not body.startswith(b"SQLite format")


@pytest.mark.parametrize(
    "path",
    [
        "/simple/%00/",
        "/simple/a%00b/",
        "/simple/%0a/",
        "/pypi/%00/json",
        "/pypi/a%00b/1.0/json",
        "/pypi/files-demo/%00/json",
        "/files/aa/%00.whl",
        "/simple/-bad-/",
        "/pypi/.../json",
    ],
)
def test_control_characters_and_invalid_names_in_urls_are_404(index: AssayServer, stored: Stored, path: str) -> None:
    # Neither backend ever sees them (PostgreSQL refuses a NUL in a string outright).
    status, _reason, body = raw_get(index.url, path)
    assert status == 404, (path, status, body)
    with index.client() as c:
        assert c.get(stored.wheel_url).status_code == 200  # and the server is fine


def _read_syscalls(index: AssayServer) -> int:
    """Read-family system calls made so far by the server process, all its threads together
    (``syscr`` of /proc/PID/io)."""
    assert index.proc is not None
    for line in Path(f"/proc/{index.proc.pid}/io").read_text().splitlines():
        if line.startswith("syscr:"):
            return int(line.split()[1])
    raise AssertionError("no syscr in /proc/PID/io")


def test_large_file_is_read_in_large_chunks(index: AssayServer, tmp_path: Path, unique: str) -> None:
    """Issue 17, item 1: a file on the filesystem store is read in 1 MiB chunks on the event
    loop, not in Starlette's 256 KiB ones in worker threads: an 8 MiB file costs ~8 reads."""
    payload = os.urandom(8 * 1024 * 1024)  # incompressible: the wheel is as large
    wheel = make_wheel(tmp_path, unique, "1.0", extra_files={f"{unique.replace('-', '_')}/blob.bin": payload})
    token = index.quick_token("files-owner")
    with index.client() as c:
        assert upload(c, wheel, token).status_code == 200
        doc = c.get(f"/simple/{unique}/", headers={"Accept": JSON_V1}).json()
        url = urljoin(f"{index.url}/simple/{unique}/", doc["files"][0]["url"])
        assert c.get(url).content == wheel.read_bytes()
        before = _read_syscalls(index)
        for _ in range(3):
            assert c.get(url).content == wheel.read_bytes()
        reads = _read_syscalls(index) - before
    if not isinstance(index.blobs(), FilesystemBlobStore):
        return  # S3: streamed from the bucket as before (its reads are the network's)
    # 3 x 8 reads of the file, and a few of the database's pages; 256 KiB chunks took 3 x 32.
    assert reads < 60, reads
