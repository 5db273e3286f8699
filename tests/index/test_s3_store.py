"""Issue 16, item 1: blobs in an S3-compatible object store (moto on loopback, tests/support/s3.py).

The shared index suite runs on S3 as a third backend (the modules with ``S3_BACKEND``); this
module has what only S3 has: presigned redirects, multipart publishing, fsck's quarantine into a
prefix of the bucket, recovery of a multipart upload cut off by a crash, and ``assay admin blobs
migrate`` from a filesystem store with reads served all along.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from assay.storage import recovery
from assay.storage.models import PendingBlob
from tests.reliability.conftest import fsck_clean
from tests.support.dists import make_sdist, make_wheel
from tests.support.s3 import S3Server
from tests.support.server import AssayServer
from tests.support.upload import upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return s3.new_bucket()


@pytest.fixture(scope="module")
def server(s3: S3Server, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    """Downloads redirected to presigned URLs; multipart from 5 MiB (S3's least part)."""
    args = ["--blob-redirect-seconds", "300", "--s3-multipart-threshold", str(5 * MIB)]
    server = AssayServer(tmp_path_factory.mktemp("s3"), args=args, env=s3.env(bucket)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(server: AssayServer) -> str:
    return server.quick_token("s3-owner")


def _files(server: AssayServer, project: str) -> dict[str, str]:
    """filename -> blob key, as the index lists them."""
    with server.client() as http:
        page_url = f"{server.url}/simple/{project}/"
        page = http.get(page_url, headers={"Accept": JSON_V1}).json()
    return {
        f["filename"]: httpx.URL(urljoin(page_url, f["url"])).path.removeprefix("/files/") for f in page["files"]
    }


def test_downloads_redirect_to_presigned_urls(server: AssayServer, s3: S3Server, token: str, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "redirected", "1.0")
    with server.client() as http:
        assert upload(http, wheel, token).status_code == 200
        (key,) = _files(server, "redirected").values()
        r = http.get(f"/files/{key}")
        assert r.status_code == 302
        location = r.headers["location"]
        # The object store answers the download, with the headers the index would send.
        assert location.startswith(s3.endpoint + "/")
        assert "X-Amz-Signature=" in location
        assert r.headers["cache-control"] == "private, no-store"
        got = httpx.get(location)
        assert got.status_code == 200
        assert got.content == wheel.read_bytes()
        assert got.headers["content-disposition"] == f'attachment; filename="{wheel.name}"'
        meta = http.get(f"/files/{key}.metadata", follow_redirects=True)
        assert meta.content.startswith(b"Metadata-Version:")
        # Access is checked before the redirect: an unknown file is still 404.
        assert http.get("/files/ab/cd/" + "e" * 60 + "/nothing-1.0-py3-none-any.whl").status_code == 404


def test_large_files_are_multipart_uploads(
    server: AssayServer, s3: S3Server, bucket: str, token: str, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "large", "1.0", extra_files={"large/blob": os.urandom(6 * MIB)})
    assert wheel.stat().st_size > 5 * MIB
    with server.client() as http:
        assert upload(http, wheel, token).status_code == 200
        (key,) = _files(server, "large").values()
        body = http.get(f"/files/{key}", follow_redirects=True).content
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(wheel.read_bytes()).hexdigest()
    head = s3.client().head_object(Bucket=bucket, Key=f"blobs/{key}")
    # A multipart upload's ETag is "<md5 of the parts' md5s>-<number of parts>".
    assert head["ETag"].strip('"').endswith("-2"), head["ETag"]


def test_recovery_aborts_a_multipart_upload_cut_off_by_a_crash(
    server: AssayServer, s3: S3Server, bucket: str
) -> None:
    """A process killed in the middle of a multipart publish leaves its journal entry and the
    parts sent so far (listed as an upload in progress, never as an object). Recovery removes
    both, so nothing of the unanswered upload remains."""
    key = "ff/ee/" + "d" * 60 + "/cutoff-1.0-py3-none-any.whl"
    client = s3.client()
    started = client.create_multipart_upload(Bucket=bucket, Key=f"blobs/{key}")
    client.upload_part(
        Bucket=bucket, Key=f"blobs/{key}", UploadId=started["UploadId"], PartNumber=1, Body=b"x" * (5 * MIB)
    )
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with server.db().write() as session:
        session.add(PendingBlob(key=key, host=recovery.HOST, pid=int(dead.stdout)))
    done = recovery.recover(server.db(), server.blobs())
    assert done.entries_cleared == 1
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=f"blobs/{key}").get("Uploads", [])
    assert uploads == []
    assert f"blobs/{key}" not in s3.objects(bucket)
    with server.db().read() as session:
        assert session.get(PendingBlob, key) is None


def test_fsck_hashes_by_streaming_and_quarantines_into_a_prefix(
    server: AssayServer, s3: S3Server, bucket: str, token: str, tmp_path: Path
) -> None:
    dists = [make_wheel(tmp_path, "damaged-s3", f"1.{i}") for i in range(3)] + [make_sdist(tmp_path, "damaged-s3", "2")]
    with server.client() as http:
        for dist in dists:
            assert upload(http, dist, token).status_code == 200
    fsck_clean(server)
    keys = _files(server, "damaged-s3")
    flipped, missing, bad_meta, intact = (d.name for d in dists)
    client = s3.client()
    original = dists[0].read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    client.put_object(Bucket=bucket, Key=f"blobs/{keys[flipped]}", Body=bytes(data))
    client.delete_object(Bucket=bucket, Key=f"blobs/{keys[missing]}")
    evil = b"Metadata-Version: 2.1\nName: evil\n"
    client.put_object(Bucket=bucket, Key=f"blobs/{keys[bad_meta]}.metadata", Body=evil)
    orphan = "aa/bb/" + "c" * 60 + "/orphan-1.0-py3-none-any.whl"
    client.put_object(Bucket=bucket, Key=f"blobs/{orphan}", Body=b"an orphan")
    stale = server.data_dir / "staging" / "4242@elsewhere@0123456789abcdef.part"
    # Private, as assay writes it (issue 10): only the damage meant is reported, no loose mode.
    fd = os.open(stale, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"half an upload")
    os.close(fd)

    result = server.cli("fsck", "--json", "--grace", "0", check=False)
    assert result.returncode == 1
    found = {(p["kind"], p["filename"] or p["key"]) for p in json.loads(result.stdout)["problems"]}
    assert found == {
        ("corrupt-blob", flipped),
        ("missing-blob", missing),
        ("corrupt-metadata", bad_meta),
        ("orphan-blob", orphan),
        ("stale-staging", stale.name),
    }
    repaired = server.cli("fsck", "--json", "--grace", "0", "--repair", check=False)
    assert repaired.returncode == 0, repaired.stdout
    where = json.loads(repaired.stdout)["quarantine"]
    prefix = f"blobs/.quarantine/{where.rstrip('/').rsplit('/', 1)[1]}/"
    assert where == f"s3://{bucket}/{prefix}"
    moved = {k.removeprefix(prefix) for k in s3.objects(bucket, prefix)}
    # Bytes are kept, never deleted: the damaged blobs and their pairs, and the orphan.
    assert moved == {keys[flipped], keys[flipped] + ".metadata", keys[bad_meta], keys[bad_meta] + ".metadata",
                     keys[missing] + ".metadata", orphan}
    body = client.get_object(Bucket=bucket, Key=prefix + keys[flipped])["Body"].read()
    assert body == bytes(data)
    # Listings skip the quarantine prefix: the index is consistent again.
    assert _files(server, "damaged-s3").keys() == {intact}
    fsck_clean(server)
    assert not stale.exists()


def test_migrate_from_filesystem_to_s3_with_reads_served_throughout(
    s3: S3Server, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = tmp_path / "data"
    server = AssayServer(data, env={"ASSAY_S3_ENDPOINT_URL": s3.endpoint}).start()
    reading = threading.Event()
    failures: list[str] = []
    try:
        token = server.quick_token("migrator")
        dists = [make_wheel(tmp_path, "moving", f"1.{i}") for i in range(4)] + [make_sdist(tmp_path, "moving", "2")]
        with server.client() as http:
            for dist in dists:
                assert upload(http, dist, token).status_code == 200
        keys = _files(server, "moving")
        expected = {key: next(d for d in dists if d.name == name).read_bytes() for name, key in keys.items()}
        server.stop()

        # Step 1: the server restarts on S3, with the old directory as its fallback.
        bucket = s3.new_bucket()
        server.env = s3.env(bucket)
        server.args = ["--blob-store-fallback", str(data / "files")]
        server.start()

        def reader() -> None:
            with server.client() as http:
                while not reading.is_set():
                    for key, body in expected.items():
                        r = http.get(f"/files/{key}")
                        if r.status_code != 200 or r.content != body:
                            failures.append(f"{key}: {r.status_code}")
                    reading.wait(0.05)

        thread = threading.Thread(target=reader)
        thread.start()
        # A new upload during the migration lands in S3 directly.
        late = make_wheel(tmp_path, "moving", "3.0")
        with server.client() as http:
            assert upload(http, late, token).status_code == 200
        # Step 2: the copy, while the server serves (a process of its own, as an operator runs it).
        result = server.admin("blobs", "migrate", "--to", f"s3://{bucket}/blobs", "--json")
        report = json.loads(result.stdout)
        assert report["copied"] == len(keys) + 4  # every file and each wheel's metadata file
        assert report["present"] == 2  # the late upload's wheel and metadata, verified
        assert report["problems"] == []
        again = json.loads(server.admin("blobs", "migrate", "--to", f"s3://{bucket}/blobs", "--json").stdout)
        assert (again["copied"], again["present"]) == (0, len(keys) + 6)
        reading.set()
        thread.join(30)
        assert failures == []
        server.stop()

        # Step 3: without the fallback (the old directory moved away): everything is in S3.
        (data / "files").rename(tmp_path / "old-files")
        server.args = []
        server.start()
        with server.client() as http:
            for key, body in expected.items():
                assert http.get(f"/files/{key}").content == body
        fsck_clean(server, files=len(keys) + 1)
    finally:
        reading.set()
        server.stop()


def test_migrate_refuses_to_copy_a_corrupt_blob(s3: S3Server, tmp_path: Path) -> None:
    server = AssayServer(tmp_path / "data", env={"ASSAY_S3_ENDPOINT_URL": s3.endpoint}).start()
    try:
        token = server.quick_token("migrator")
        wheel = make_wheel(tmp_path, "rotten", "1.0")
        with server.client() as http:
            assert upload(http, wheel, token).status_code == 200
        (key,) = _files(server, "rotten").values()
        (tmp_path / "data" / "files" / key).write_bytes(b"bit rot")
        bucket = s3.new_bucket()
        result = server.admin("blobs", "migrate", "--to", f"s3://{bucket}/blobs", "--json", check=False)
        assert result.returncode == 1
        problems = json.loads(result.stdout)["problems"]
        assert [p["key"] for p in problems] == [key]
        assert "not copied" in problems[0]["detail"]
        assert f"blobs/{key}" not in s3.objects(bucket)
    finally:
        server.stop()
