"""Reads and uploads with blobs on S3 (moto on loopback) against the filesystem store (issue 16).

One run, three servers side by side (each ``assay serve``, one worker, SQLite): the filesystem
store, S3 with downloads streamed through the index, and S3 with downloads redirected to
presigned URLs. Each gets the same uploads (N wheels of SIZE bytes, from T client threads) and
the same reads (each file downloaded R times); wall-clock throughput and the server process's
CPU time per request (``/proc/<pid>/stat`` utime + stime; moto's own CPU, the stand-in S3
server, is reported apart: a real object store spends its own, not the index's). A redirected
download counts the 302 only on the index; the client then fetches from the object store.

Usage (from the repository root; ``--baseline-src`` adds an earlier commit's filesystem store):

    .venv/bin/python -m bench.storage.bench_s3 [--files 60] [--size 200000] [--reads 3] [--threads 4]
        [--baseline-src /tmp/old/src]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

import httpx
from tests.support.dists import make_wheel
from tests.support.s3 import CREDENTIALS, s3_server
from tests.support.server import AssayServer
from tests.support.upload import upload

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def timed(pid: int, moto_pid: int, work: Callable[[], int]) -> dict[str, float]:
    c0, m0, t0 = cpu(pid), cpu(moto_pid), time.perf_counter()
    n = work()
    wall = time.perf_counter() - t0
    return {
        "requests": n,
        "per_s": n / wall,
        "cpu_ms_per_request": (cpu(pid) - c0) * 1000 / n,
        "s3_server_cpu_ms_per_request": (cpu(moto_pid) - m0) * 1000 / n,
    }


def measure(server: AssayServer, moto_pid: int, wheels: dict[int, Path], args: argparse.Namespace) -> dict:
    assert server.proc is not None
    token = server.quick_token("bench")
    pool = ThreadPoolExecutor(args.threads)
    clients = [server.client() for _ in range(args.threads)]
    plain = httpx.Client(timeout=60)

    def upload_one(i: int) -> None:
        r = upload(clients[i % args.threads], wheels[i], token)
        assert r.status_code == 200, r.text

    def uploads() -> int:
        list(pool.map(upload_one, range(args.files)))
        return args.files

    try:
        up = timed(server.proc.pid, moto_pid, uploads)
        page_url = f"{server.url}/simple/bench-s3/"
        page = clients[0].get(page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        urls = [urljoin(page_url, f["url"]) for f in page["files"]] * args.reads

        def read_one(i: int) -> None:
            r = clients[i % args.threads].get(urls[i])
            if r.status_code == 302:
                r = plain.get(r.headers["location"])
            assert r.status_code == 200
            assert len(r.content) > args.size

        def reads() -> int:
            list(pool.map(read_one, range(len(urls))))
            return len(urls)

        down = timed(server.proc.pid, moto_pid, reads)
    finally:
        pool.shutdown()
        for c in clients:
            c.close()
        plain.close()
    return {"upload": up, "download": down}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--reads", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--baseline-src", help="src/ of an earlier assay (git archive REV src | tar -x): its filesystem store too"
    )
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with s3_server() as s3, tempfile.TemporaryDirectory(prefix="assay-bench-s3-") as tmp:
        work = Path(tmp)
        (work / "dists").mkdir()
        wheels = {
            v: make_wheel(work / "dists", "bench-s3", f"1.{v}", extra_files={"bench_s3/blob": os.urandom(args.size)})
            for v in range(args.files)
        }
        variants: dict[str, tuple[dict[str, str], list[str]]] = {}
        if args.baseline_src:
            variants["filesystem (baseline)"] = ({"PYTHONPATH": args.baseline_src}, [])
        variants |= {
            "filesystem": ({}, []),
            "s3-streamed": (s3.env(s3.new_bucket()), []),
            "s3-redirected": (s3.env(s3.new_bucket()), ["--blob-redirect-seconds", "300"]),
        }
        for name, (env, extra) in variants.items():
            server = AssayServer(work / name, env={"ASSAY_ACCESS_LOG": "false", **env}, args=extra).start()
            try:
                results[name] = measure(server, s3.proc.pid, wheels, args)
            finally:
                server.stop()
    base = results["filesystem"]
    print(json.dumps(results, indent=2))
    print()
    print("| store | uploads/s | CPU ms/upload (index) | downloads/s | CPU ms/download (index) "
          "| S3 server CPU ms/download |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio_up = r["upload"]["per_s"] / base["upload"]["per_s"]
        ratio_down = r["download"]["per_s"] / base["download"]["per_s"]
        print(
            f"| {name} | {r['upload']['per_s']:.1f} ({ratio_up:.2f}x) | {r['upload']['cpu_ms_per_request']:.1f} "
            f"| {r['download']['per_s']:.1f} ({ratio_down:.2f}x) | {r['download']['cpu_ms_per_request']:.2f} "
            f"| {r['download']['s3_server_cpu_ms_per_request']:.2f} |"
        )


if __name__ == "__main__":
    main()
