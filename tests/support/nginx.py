"""nginx (Debian's nginx-light, ``scripts/nginx-up``) as a load balancer in front of several
``assay serve`` processes on loopback, optionally with ``proxy_cache`` as a stand-in CDN edge.
Only the binary is used: each instance runs in the foreground with its own configuration and
temporary directory."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

NGINX_CONF = """
user root;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 200m;
{cache_path}
    upstream assay {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://assay;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            # A dead process: the next one (an upload already sent is not retried: POST).
            proxy_next_upstream error timeout;
{cache}
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Nginx:
    def __init__(self, tmp: Path, port: int, upstreams: list[int], *, cache: bool = False) -> None:
        """``cache``: nginx's proxy_cache in front, storing what the responses' Cache-Control
        allows (s-maxage, max-age), keyed by URL and Accept (the pages vary on it)."""
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            pytest.fail("nginx is needed (Debian package nginx-light): run scripts/nginx-up", pytrace=False)
        tmp.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;" for p in upstreams)
        conf = tmp / "nginx.conf"
        cache_path = f"    proxy_cache_path {tmp}/cache keys_zone=assay:10m;" if cache else ""
        cache_conf = (
            "            proxy_cache assay;\n"
            '            proxy_cache_key "$request_uri $http_accept";\n'
            "            add_header X-Cache-Status $upstream_cache_status;"
            if cache
            else ""
        )
        conf.write_text(
            NGINX_CONF.format(tmp=tmp, port=port, servers=servers, cache=cache_conf, cache_path=cache_path)
        )
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(self.url + "/simple/", timeout=2)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read() if self.proc.stderr else b""
                    raise RuntimeError(f"nginx did not start: {err!r}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
