"""A/B of the read path: two assay source trees serving one populated index, alternately.

bench.py's measurement step (server pinned to CPU 0, wrk pinned to CPU 1, the same
pseudo-random project sequence, ``text/html``, 10 connections) for two source trees of assay
on one data directory, in alternating order (A B, B A, ...) so that a drift in the machine's
load falls on both. For a refactor that must not slow the read path (issue 11), where a full
``bench/index/run`` per commit would take hours on the shared machine. The trees must share the
schema (the index is populated once, by ``load_assay.py``).

Usage:
  git archive OLD src | tar -x -C /tmp/old
  python bench/index/gen.py DISTS --projects 300
  python bench/index/load_assay.py DATA DISTS --projects 300
  python bench/index/ab_read_path.py DATA --projects 300 --a /tmp/old/src --b src --rounds 4
Prints one line per run and then {"a": [req/s, ...], "b": [...], "ratio_b_over_a": ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
from pathlib import Path

import bench


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path, help="a populated assay data directory")
    ap.add_argument("--projects", type=int, required=True, help="how many projects it holds")
    ap.add_argument("--a", type=Path, required=True, help="src/ directory of the first tree")
    ap.add_argument("--b", type=Path, required=True, help="src/ directory of the second tree")
    ap.add_argument(
        "--b-data",
        type=Path,
        help="a copy of DATA for the second tree, when its schema is newer (it migrates the copy at start)",
    )
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=20, help="measured seconds per run")
    ap.add_argument("--connections", type=int, default=10)
    args = ap.parse_args()

    work = args.data.resolve().parent
    paths = work / "ab-paths.txt"
    rng = random.Random(1)
    paths.write_text("".join(f"bench-pkg-{rng.randrange(args.projects):05d}\n" for _ in range(200_000)))
    trees = {"a": str(args.a.resolve()), "b": str(args.b.resolve())}
    results: dict[str, list[float]] = {"a": [], "b": []}
    for r in range(args.rounds):
        for name in ["a", "b"] if r % 2 == 0 else ["b", "a"]:
            port = free_port()
            data = args.b_data if name == "b" and args.b_data else args.data
            cmd = [sys.executable, "-m", "assay", "serve", "--data-dir", str(data), "--port", str(port)]
            server = bench.Server(name, "", cmd, "/simple/", ["html"], env={"PYTHONPATH": trees[name]})
            with bench.running(server, port, work / f"ab-{name}.log"):
                bench.wrk(port, "/simple/", "text/html", args.connections, 3, paths, 30)  # warm-up
                res = bench.wrk(port, "/simple/", "text/html", args.connections, args.seconds, paths, 30)
            results[name].append(round(res["requests"] / (res["duration_us"] / 1e6), 1))
            print(name, r, json.dumps(res), flush=True)
    ratio = statistics.mean(results["b"]) / statistics.mean(results["a"])
    print(json.dumps({**results, "ratio_b_over_a": round(ratio, 3)}))


if __name__ == "__main__":
    main()
