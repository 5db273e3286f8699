"""Issue 16: three ``assay serve`` processes on one PostgreSQL and one S3 bucket (moto), behind
nginx (the Debian package; ``scripts/nginx-up`` installs it) as the load balancer.

Uploads (API tokens and Trusted Publishing), reads and token exchanges go through nginx, spread
over all three; one process is SIGKILLed mid-run and comes back. Afterwards: every upload
answered 200 is served whole by every process, an upload cut off by the kill is all there or
not at all, the bucket holds exactly the served objects, fsck is clean; same-file races through
the balancer have one winner; one OIDC token sent to each process is minted once (the JWT
replay is refused across processes); and the purge endpoint got a purge for every changed
project."""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.reliability.conftest import fsck_clean
from tests.reliability.test_races import _identical_and_different
from tests.support.dists import make_wheel
from tests.support.nginx import Nginx, free_port
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.postgres import fresh_database
from tests.support.purge_endpoint import PurgeEndpoint
from tests.support.s3 import S3Server
from tests.support.server import AssayServer
from tests.support.upload import upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"
REPO = "acme/cluster"

@pytest.fixture
def cluster(s3: S3Server, tmp_path: Path) -> Iterator[tuple[list[AssayServer], Nginx, PurgeEndpoint, S3Server, str]]:
    bucket = s3.new_bucket()
    lb_port = free_port()
    ports = [free_port() for _ in range(3)]
    with fresh_database() as url, PurgeEndpoint() as purges:
        env = {**s3.env(bucket), "ASSAY_CDN_PURGE_URL": purges.url, "ASSAY_CDN_PURGE_STYLE": "purge"}
        common = ["--base-url", f"http://127.0.0.1:{lb_port}", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
        servers: list[AssayServer] = []
        nginx: Nginx | None = None
        try:
            for i, port in enumerate(ports):
                # One transparency-log key for all: the first server creates it.
                key = ["--log-key", str(tmp_path / "s0" / "log" / "signing.key")] if i else []
                servers.append(
                    AssayServer(tmp_path / f"s{i}", database_url=url, env=env, args=[*common, *key], port=port).start()
                )
            nginx = Nginx(tmp_path / "nginx", lb_port, ports)
            yield servers, nginx, purges, s3, bucket
        finally:
            if nginx is not None:
                nginx.stop()
            for server in servers:
                server.stop()


def _posts(server: AssayServer, path: str) -> int:
    return sum(1 for line in server.access_log() if f"POST {path}" in line)


def test_three_servers_behind_nginx_on_one_database_and_one_bucket(cluster, tmp_path: Path) -> None:
    servers, nginx, purges, s3, bucket = cluster
    first = servers[0]
    token = first.quick_token("cluster")
    with OIDCProvider() as idp:
        first.cli("issuer", "add", "--issuer", idp.issuer)
        first.quick_user("owner")
        first.cli("project", "create", "cluster-tp", "--owner", "owner")
        first.cli(
            "publisher", "add", "github", "--project", "cluster-tp", "--issuer", idp.issuer,
            "--repository", REPO, "--workflow", "release.yml",
        )
        attempts: list[tuple[Path, int | None]] = []
        reads: list[int] = []
        lock = threading.Lock()
        stop = threading.Event()

        def uploader(idx: int, trusted: bool) -> None:
            n = 0
            workdir = tmp_path / f"t{idx}"
            workdir.mkdir()
            project = "cluster-tp" if trusted else "cluster-plain"
            with httpx.Client(base_url=nginx.url, timeout=60) as http:
                while not stop.is_set():
                    n += 1
                    wheel = make_wheel(workdir, project, f"{idx}.{n}", extra_files={"x/blob": bytes(50_000 + n)})
                    secret = token
                    if trusted:
                        jwt = idp.token("assay", github_claims(REPO))
                        minted = http.post("/_/oidc/mint-token", json={"token": jwt})
                        if minted.status_code == 502:
                            continue  # the process died with the exchange: nothing was uploaded
                        assert minted.status_code == 200, minted.text
                        secret = minted.json()["token"]
                    try:
                        status: int | None = upload(http, wheel, secret).status_code
                    except httpx.HTTPError:
                        status = None
                    # nginx answers 502 when the process holding the upload died: assay never answered.
                    with lock:
                        attempts.append((wheel, None if status == 502 else status))
                        reads.append(http.get("/simple/", headers={"Accept": JSON_V1}).status_code)

        threads = [threading.Thread(target=uploader, args=(i, i == 3)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(3)
        servers[1].kill()  # mid-run: SIGKILL, no clean-up
        time.sleep(2)
        servers[1].start()  # recovery at start-up
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join(120)

        accepted = {w.name: w for w, s in attempts if s == 200}
        cut_off = {w.name: w for w, s in attempts if s is None}
        assert not [(w.name, s) for w, s in attempts if s not in (200, None)]
        assert accepted, "no upload completed"
        assert any(w.name.startswith("cluster_tp") for w in accepted.values()), "no Trusted Publishing upload"
        # Reads never failed: nginx passed those of the dead process on to the others.
        assert set(reads) == {200}
        print(
            f"\n{len(attempts)} uploads through nginx: {len(accepted)} accepted, {len(cut_off)} cut off by the kill; "
            f"per process: {[_posts(s, '/legacy/') for s in servers]}"
        )
        # Uploads and token exchanges reached every process.
        assert all(_posts(s, "/legacy/") for s in servers), [_posts(s, "/legacy/") for s in servers]
        assert sum(1 for s in servers if _posts(s, "/_/oidc/mint-token")) >= 2

        # Every accepted upload is served whole, by each process; a cut-off one all or nothing.
        keys: set[str] = set()
        for project in ("cluster-plain", "cluster-tp"):
            for server in servers:
                with server.client() as http:
                    page_url = f"{server.url}/simple/{project}/"
                    listed = {f["filename"]: f for f in http.get(page_url, headers={"Accept": JSON_V1}).json()["files"]}
                    assert {n for n in accepted if n.startswith(project.replace("-", "_"))} <= set(listed)
                    assert set(listed) <= set(accepted) | set(cut_off)
                    for name, entry in listed.items():
                        url = urljoin(page_url, entry["url"])
                        body = http.get(url).content
                        local = (accepted.get(name) or cut_off[name]).read_bytes()
                        assert body == local, name
                        assert entry["hashes"]["sha256"] == hashlib.sha256(body).hexdigest()
                        key = httpx.URL(url).path.removeprefix("/files/")
                        keys |= {key, key + ".metadata"}
        # The bucket holds exactly what is served: nothing of an unanswered upload that is not listed.
        assert s3.objects(bucket, "blobs/") == sorted(f"blobs/{k}" for k in keys)
        fsck_clean(first, files=len(keys) // 2)

        # Same-file races through the balancer: identical bytes all succeed with one file, different
        # bytes under one name have one winner.
        (tmp_path / "races").mkdir()
        _identical_and_different([nginx.url], token, tmp_path / "races")

        # One OIDC token sent to each process at once: minted once, refused as a replay elsewhere.
        jwt = idp.token("assay", github_claims(REPO))
        barrier = threading.Barrier(3)

        def mint(server: AssayServer) -> httpx.Response:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                barrier.wait()
                return http.post("/_/oidc/mint-token", json={"token": jwt})

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            results = list(pool.map(mint, servers))
        assert sorted(r.status_code for r in results) == [200, 422, 422], [r.text for r in results]
        assert {r.json()["errors"][0]["code"] for r in results if r.status_code == 422} == {"invalid-reuse-token"}

    # Purges for every changed project reached the endpoint (from whichever process committed).
    wanted = {
        "project:default/cluster-plain", "project:default/cluster-tp", "project:default/raced", "projects:default"
    }
    assert wanted <= purges.wait_for(wanted)
