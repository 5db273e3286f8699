"""Behind nginx, file downloads are handed to it (issue 17, item 1: ``accel_redirect_prefix``).

assay checks the request (index, read access, quarantine, If-None-Match) and answers with
``X-Accel-Redirect``; nginx sends the bytes from an ``internal`` location aliased to the blob
directory (``sendfile``, zero copy), Range requests included.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.support.dists import make_wheel, sha256
from tests.support.nginx import free_port
from tests.support.server import AssayServer
from tests.support.upload import upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"

CONF = """
user root;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /_assay_blobs/ {{
            internal;
            alias {files}/;
            # assay's ETag (the sha256) and security headers, not nginx's own.
            etag off;
            add_header ETag $upstream_http_etag;
            add_header X-Content-Type-Options $upstream_http_x_content_type_options;
        }}
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AssayServer, str]]:
    tmp = tmp_path_factory.mktemp("accel")
    server = AssayServer(tmp / "data", args=["--accel-redirect-prefix", "/_assay_blobs/"]).start()
    port = free_port()
    upstream = server.url.rsplit(":", 1)[1]
    conf = tmp / "nginx.conf"
    conf.write_text(CONF.format(tmp=tmp, port=port, upstream=upstream, files=tmp / "data" / "files"))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/simple/", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, "nginx exited"
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield server, url
    finally:
        proc.terminate()
        proc.wait(10)
        server.stop()


def test_nginx_sends_the_file_assay_hands_it(behind_nginx: tuple[AssayServer, str], tmp_path: Path) -> None:
    server, proxy = behind_nginx
    wheel = make_wheel(tmp_path, "accel-demo", "1.0", extra_files={"accel_demo/data.bin": bytes(range(256)) * 64})
    with server.client() as c:
        assert upload(c, wheel, server.quick_token("accel-owner")).status_code == 200
        doc = c.get("/simple/accel-demo/", headers={"Accept": JSON_V1}).json()
        path = urljoin("/simple/accel-demo/", doc["files"][0]["url"])
        # assay itself sends no bytes: it names the file for the proxy.
        direct = c.get(path)
        assert direct.content == b""
        assert direct.headers["x-accel-redirect"].startswith("/_assay_blobs/")
        assert direct.headers["etag"] == f'"{sha256(wheel)}"'
        # Still assay's rules first: a matching If-None-Match is its 304.
        assert c.get(path, headers={"If-None-Match": f'"{sha256(wheel)}"'}).status_code == 304
    data = wheel.read_bytes()
    with httpx.Client(base_url=proxy, timeout=30) as c:
        r = c.get(path)
        assert r.status_code == 200
        assert r.content == data
        assert "x-accel-redirect" not in r.headers
        # With the location's two add_header lines: assay's ETag and security headers.
        assert r.headers["etag"] == f'"{sha256(wheel)}"'
        assert r.headers["x-content-type-options"] == "nosniff"
        assert wheel.name in r.headers["content-disposition"]
        assert "immutable" in r.headers["cache-control"]
        tail = c.get(path, headers={"Range": "bytes=-22"})
        assert tail.status_code == 206
        assert tail.content == data[-22:]
        # The internal location is not reachable from outside.
        assert c.get(direct.headers["x-accel-redirect"]).status_code == 404
