"""Issue 10, item 12: a full disk is said as such. The data directory is a real 2 MiB tmpfs;
an upload that does not fit gets 507 "Storage full" (RFC 4918 section 11.5), not a 500 and not a
dropped connection, and the next request on the same keep-alive connection is answered."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.dists import make_wheel
from tests.support.raw_http import exchange, raw_request
from tests.support.server import AssayServer
from tests.support.upload import basic, form_for

TMPFS_SIZE = "2m"


@pytest.fixture(scope="module")
def full_disk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    root = tmp_path_factory.mktemp("storage-full")
    data = root / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(data)], check=True)
    try:
        # The database lives elsewhere: only the files run out of room.
        srv = AssayServer(data, database_url=f"sqlite:///{root / 'assay.db'}").start()
        try:
            yield srv
        finally:
            srv.stop()
    finally:
        subprocess.run(["umount", str(data)], check=True)


def test_upload_on_a_full_disk_answers_507_and_the_connection_stays_usable(
    full_disk_server: AssayServer, tmp_path: Path
) -> None:
    server = full_disk_server
    token = server.quick_token("full")
    wheel = make_wheel(tmp_path, "full", "1.0", extra_files={"full/blob": os.urandom(3 * 1024 * 1024)})
    form = httpx.Request(
        "POST", server.upload_url, data=form_for(wheel),
        files={"content": (wheel.name, wheel.read_bytes(), "application/octet-stream")},
    )
    headers = (
        "Authorization: " + basic(token)["Authorization"] + "\r\n"
        f"Content-Type: {form.headers['content-type']}\r\n"
    )
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        status, answer_headers, body = exchange(sock, raw_request("POST", "/legacy/", form.read(), headers))
        assert status == 507, body
        assert b"Storage full" in body
        assert answer_headers["retry-after"].isdigit()
        # The next request on the same connection is answered.
        status, _, _ = exchange(sock, raw_request("GET", "/"))
        assert status == 200
    # And the full disk is not made any fuller by what was refused.
    assert server.stored_files() == []
