"""Mirror indexes over HTTP (issue 12): a warm mirrored simple page against a hosted one, the
cold cost of a first page and a first file, side by side in one run.

Setup (not timed): an upstream ``assay serve`` holding N small projects (one wheel each), and
the index under test, another ``assay serve`` with a mirror index ``up`` of it (default policy)
and the same N projects hosted in its default index. Both servers on loopback.

Timed, CPU of the index under test's process per request (``/proc/<pid>/stat``, so the
machine's other load counts less than in wall time), alternating rounds:

* ``hosted``: ``/simple/<p>/`` of a hosted project (the render cache warm);
* ``mirrored warm``: ``/up/simple/<p>/`` of a project whose page is kept (within its TTL);
* ``mirrored cold page``: the first ``/up/simple/<p>/`` of a project (fetched from upstream,
  decided, recorded), and the upstream's own CPU for its page, for the overhead;
* ``mirrored cold file``: the first download of a file (fetched, checked, stored).

Usage (from the repository root): ``.venv/bin/python -m bench.mirror.pages [--projects 200] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.support.dists import make_wheel
from tests.support.server import AssayServer
from tests.support.upload import upload

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks of 10 ms


def per_request(
    server: AssayServer, other: AssayServer | None, urls: list[str], headers: dict[str, str]
) -> dict[str, float]:
    assert server.proc is not None
    pid, opid = server.proc.pid, other.proc.pid if other and other.proc else None
    c0, o0, t0 = cpu(pid), cpu(opid) if opid else 0.0, time.perf_counter()
    with httpx.Client(timeout=60) as http:
        for url in urls:
            response = http.get(url, headers=headers)
            assert response.status_code == 200, (url, response.status_code, response.text[:200])
    n = len(urls)
    out = {"cpu_ms": (cpu(pid) - c0) * 1000 / n, "wall_ms": (time.perf_counter() - t0) * 1000 / n}
    if opid:
        out["upstream_cpu_ms"] = (cpu(opid) - o0) * 1000 / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        upstream = AssayServer(tmp / "upstream").start()
        index = AssayServer(tmp / "index").start()
        try:
            names = [f"bench-m-{i:04d}" for i in range(args.projects)]
            up_token, token = upstream.quick_token("bench"), index.quick_token("bench")
            (tmp / "d").mkdir()
            with upstream.client() as up, index.client() as local:
                for name in names:
                    wheel = make_wheel(tmp / "d", name, "1.0")
                    assert upload(up, wheel, up_token).status_code == 200
                    assert upload(local, wheel, token).status_code == 200
            index.cli("index", "create", "up", "--mirror", upstream.simple)
            cold = per_request(index, upstream, [f"{index.url}/up/simple/{n}/" for n in names], JSON)
            with httpx.Client() as http:
                page = http.get(f"{index.url}/up/simple/{names[0]}/", headers=JSON).json()
            base = httpx.URL(f"{index.url}/up/simple/{names[0]}/")
            first_file = per_request(index, upstream, [str(base.join(page["files"][0]["url"]))], {})
            results: dict[str, list[dict[str, float]]] = {"hosted": [], "mirrored warm": []}
            runs: dict[str, Callable[[], dict[str, float]]] = {
                "hosted": lambda: per_request(index, None, [f"{index.url}/simple/{n}/" for n in names], JSON),
                "mirrored warm": lambda: per_request(index, None, [f"{index.url}/up/simple/{n}/" for n in names], JSON),
            }
            for r in range(args.rounds):
                for name in list(runs) if r % 2 == 0 else list(reversed(runs)):
                    results[name].append(runs[name]())
        finally:
            index.stop()
            upstream.stop()
    summary = {name: statistics.median(x["cpu_ms"] for x in runs_) for name, runs_ in results.items()}
    print(json.dumps({
        "projects": args.projects,
        "cpu_ms_per_request_median": summary,
        "mirrored_over_hosted": summary["mirrored warm"] / summary["hosted"],
        "cold_page": cold,
        "cold_first_file": first_file,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
