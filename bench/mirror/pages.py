"""Mirror indexes over HTTP (issue 12): a warm mirrored simple page against a hosted one, the
cold cost of a first page and a first file, side by side in one run.

Setup (not timed): an upstream ``assay serve`` holding N small projects (one wheel each), and
the index under test, another ``assay serve`` with a mirror index ``up`` of it (default policy)
and the same N projects hosted in its default index. Both servers on loopback.

Timed, CPU of the index under test's process per request (``/proc/<pid>/stat``, so the
machine's other load counts less than in wall time), alternating rounds:

* ``hosted``: ``/simple/<p>/`` of a hosted project (the render cache warm);
* ``hosted /named/``: the same projects hosted in a named index (``/named/simple/<p>/``), as
  deep in the route tree as the mirror index ``/up/``;
* ``mirrored warm``: ``/up/simple/<p>/`` of a project whose page is kept (within its TTL);
  each warm round is a steady loop over the pages for ``--seconds`` (default 8, longer than
  any per-worker reuse interval a server might have, so re-deciding is counted);
* ``mirrored cold page``: the first ``/up/simple/<p>/`` of a project (fetched from upstream,
  decided, recorded), and the upstream's own CPU for its page, for the overhead;
* ``mirrored cold file``: the first download of a file (fetched, checked, stored).

Usage (from the repository root): ``.venv/bin/python -m bench.mirror.pages [--projects 200] [--rounds 3] [--seconds 8]``
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
    server: AssayServer,
    other: AssayServer | None,
    urls: list[str],
    headers: dict[str, str],
    seconds: float = 0.0,
) -> dict[str, float]:
    """GET each URL once, then again in turn until ``seconds`` have passed (a steady load long
    enough for anything a server redoes every few seconds to be counted)."""
    assert server.proc is not None
    pid, opid = server.proc.pid, other.proc.pid if other and other.proc else None
    c0, o0, t0 = cpu(pid), cpu(opid) if opid else 0.0, time.perf_counter()
    n = 0
    with httpx.Client(timeout=60) as http:
        while n < len(urls) or time.perf_counter() - t0 < seconds:
            url = urls[n % len(urls)]
            response = http.get(url, headers=headers)
            assert response.status_code == 200, (url, response.status_code, response.text[:200])
            n += 1
    out = {
        "requests": float(n),
        "cpu_ms": (cpu(pid) - c0) * 1000 / n,
        "wall_ms": (time.perf_counter() - t0) * 1000 / n,
    }
    if opid:
        out["upstream_cpu_ms"] = (cpu(opid) - o0) * 1000 / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each timed round of warm pages (s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        upstream = AssayServer(tmp / "upstream").start()
        index = AssayServer(tmp / "index").start()
        try:
            names = [f"bench-m-{i:04d}" for i in range(args.projects)]
            up_token, token = upstream.quick_token("bench"), index.quick_token("bench")
            # A named hosted index too: ``/up/`` is a named index, whose routes sit one mount
            # deeper than the default index's (issue 11), so "hosted /named/" is the like-for-like.
            index.cli("index", "create", "named")
            named_token = index.cli("token", "create", "--user", "bench", "--index", "named").stdout.strip()
            (tmp / "d").mkdir()
            with upstream.client() as up, index.client() as local, index.client(index="named") as named:
                for name in names:
                    wheel = make_wheel(tmp / "d", name, "1.0")
                    assert upload(up, wheel, up_token).status_code == 200
                    assert upload(local, wheel, token).status_code == 200
                    assert upload(named, wheel, named_token).status_code == 200
            index.cli("index", "create", "up", "--mirror", upstream.simple)
            cold = per_request(index, upstream, [f"{index.url}/up/simple/{n}/" for n in names], JSON)
            with httpx.Client() as http:
                page = http.get(f"{index.url}/up/simple/{names[0]}/", headers=JSON).json()
            base = httpx.URL(f"{index.url}/up/simple/{names[0]}/")
            first_file = per_request(index, upstream, [str(base.join(page["files"][0]["url"]))], {})
            results: dict[str, list[dict[str, float]]] = {"hosted": [], "hosted /named/": [], "mirrored warm": []}
            runs: dict[str, Callable[[], dict[str, float]]] = {
                "hosted": lambda: per_request(
                    index, None, [f"{index.url}/simple/{n}/" for n in names], JSON, args.seconds
                ),
                "hosted /named/": lambda: per_request(
                    index, None, [f"{index.url}/named/simple/{n}/" for n in names], JSON, args.seconds
                ),
                "mirrored warm": lambda: per_request(
                    index, None, [f"{index.url}/up/simple/{n}/" for n in names], JSON, args.seconds
                ),
            }
            for r in range(args.rounds):
                for name in list(runs) if r % 2 == 0 else list(reversed(runs)):
                    results[name].append(runs[name]())
        finally:
            index.stop()
            upstream.stop()
    summary = {name: statistics.median(x["cpu_ms"] for x in runs_) for name, runs_ in results.items()}
    wall = {name: statistics.median(x["wall_ms"] for x in runs_) for name, runs_ in results.items()}
    print(json.dumps({
        "projects": args.projects,
        "cpu_ms_per_request_median": summary,
        "wall_ms_per_request_median": wall,
        "requests_per_round": {name: [x["requests"] for x in runs_] for name, runs_ in results.items()},
        "mirrored_over_hosted": summary["mirrored warm"] / summary["hosted"],
        "mirrored_over_hosted_named": summary["mirrored warm"] / summary["hosted /named/"],
        "cold_page": cold,
        "cold_first_file": first_file,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
