"""Three servers against one behind the same nginx, and nginx's proxy_cache as a CDN edge (issue 16).

Three ``assay serve`` processes (one worker each) on one PostgreSQL database and one S3 bucket
(moto on loopback), ``--cdn-s-maxage 60``. In one run, the same read-heavy mix from T client
threads for D seconds through nginx (Debian's nginx-light) set up three ways: one upstream,
three upstreams, and three upstreams with ``proxy_cache`` honouring the responses'
Cache-Control (keyed by URL and Accept). The mix: 90 % simple pages (PEP 691 JSON, random
project of P), 5 % file downloads, 5 % uploads of new wheels. Reported: requests per second
through nginx, the assay processes' CPU per request (utime + stime of the ones behind nginx,
over all requests the clients sent: what the index spends per client request), and the
fraction of requests that reached assay (its access logs).

Usage (from the repository root):

    .venv/bin/python -m bench.storage.bench_cluster [--seconds 15] [--threads 8] [--projects 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
from bench.storage.bench_s3 import cpu
from tests.support.dists import make_wheel
from tests.support.nginx import Nginx, free_port
from tests.support.postgres import fresh_database
from tests.support.s3 import CREDENTIALS, s3_server
from tests.support.server import AssayServer
from tests.support.upload import upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def served(server: AssayServer) -> int:
    return len(server.access_log())


def run_mix(
    url: str, token: str, projects: list[str], files: list[str], work: Path, args: argparse.Namespace, run: int
) -> int:
    stop = time.monotonic() + args.seconds
    counts = [0] * args.threads
    errors: list[str] = []

    def client(i: int) -> None:
        rng = random.Random(i)
        n = 0
        directory = work / f"run{run}-{i}"
        directory.mkdir()
        with httpx.Client(base_url=url, timeout=60) as http:
            while time.monotonic() < stop:
                roll = rng.random()
                if roll < 0.90:
                    r = http.get(f"/simple/{rng.choice(projects)}/", headers={"Accept": JSON_V1})
                elif roll < 0.95:
                    r = http.get(rng.choice(files))
                else:
                    n += 1
                    wheel = make_wheel(directory, rng.choice(projects), f"9.{run}.{i}.{n}")
                    r = upload(http, wheel, token)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:100]}")
                counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    return sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--projects", type=int, default=20)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    results = {}
    with s3_server() as s3, fresh_database() as db, tempfile.TemporaryDirectory(prefix="assay-cluster-") as tmp:
        work = Path(tmp)
        bucket = s3.new_bucket()
        ports = [free_port() for _ in range(3)]
        env = {**s3.env(bucket), "ASSAY_ACCESS_LOG": "true"}
        servers: list[AssayServer] = []
        try:
            for i, port in enumerate(ports):
                key = ["--log-key", str(work / "s0" / "log" / "signing.key")] if i else []
                extra = ["--cdn-s-maxage", "60", "--allowed-host", "127.0.0.1", *key]
                servers.append(AssayServer(work / f"s{i}", database_url=db, env=env, args=extra, port=port).start())
            token = servers[0].quick_token("bench")
            projects = [f"cluster-{p}" for p in range(args.projects)]
            (work / "seed").mkdir()
            files: list[str] = []
            with servers[0].client() as http:
                for p in projects:
                    assert upload(http, make_wheel(work / "seed", p, "1.0"), token).status_code == 200
                    page_url = f"{servers[0].url}/simple/{p}/"
                    entry = http.get(page_url, headers={"Accept": JSON_V1}).json()["files"][0]
                    files.append(httpx.URL(urljoin(page_url, entry["url"])).path)
            setups = {
                "nginx -> 1 server": (ports[:1], False),
                "nginx -> 3 servers": (ports, False),
                "nginx proxy_cache -> 3 servers": (ports, True),
            }
            for name, (upstreams, cache) in setups.items():
                behind = [s for s in servers if s.port in upstreams]
                lb = Nginx(work / f"nginx-{len(results)}", free_port(), upstreams, cache=cache)
                try:
                    before_cpu = sum(cpu(s.proc.pid) for s in behind if s.proc)
                    before_served = sum(served(s) for s in behind)
                    t0 = time.perf_counter()
                    total = run_mix(lb.url, token, projects, files, work, args, len(results))
                    wall = time.perf_counter() - t0
                    used = sum(cpu(s.proc.pid) for s in behind if s.proc) - before_cpu
                    reached = sum(served(s) for s in behind) - before_served
                finally:
                    lb.stop()
                results[name] = {
                    "requests": total,
                    "per_s": total / wall,
                    "assay_cpu_ms_per_request": used * 1000 / total,
                    "reached_assay": reached / total,
                }
        finally:
            for s in servers:
                s.stop()
    print(json.dumps(results, indent=2))
    base = results["nginx -> 1 server"]["per_s"]
    print("\n| set-up | requests/s (ratio) | assay CPU ms per request | requests reaching assay |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['per_s']:.0f} ({r['per_s'] / base:.2f}x) | {r['assay_cpu_ms_per_request']:.2f} "
            f"| {100 * r['reached_assay']:.0f} % |"
        )


if __name__ == "__main__":
    main()
