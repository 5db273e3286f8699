"""Issue 17: CPU per request of the read path, two assay trees and nginx on the same bytes.

One populated index (``gen.py`` + ``load_assay.py``, ``--projects`` projects x 10 files), served
in alternating order (A B N, N B A, ...) by assay from tree A, assay from tree B (``assay
serve``, defaults: one worker, SQLite, the filesystem store) and nginx (one worker, ``sendfile
on``) serving the very same bytes: the blob directory aliased under ``/files/`` and each simple
page as assay renders it (fetched once, written to disk). Four workloads per server: simple
pages (``text/html``, a fixed pseudo-random sequence over all projects), small files (the
wheels and sdists, 1-2 KB, in a fixed pseudo-random order), one 1 MiB file and one 20 MiB file
(two of the wheels' blobs overwritten with random bytes of that size: the servers send what is
on disk; nothing checks a digest on the way out). Server pinned to CPU 0, wrk (1 thread) to
CPU 1; CPU per request is the server process tree's utime + stime over the run divided by the
requests it answered (wall time is not compared: the machine is shared).

Optional rows: ``--granian`` (tree B under ``assay serve --server granian``, which offers the
ASGI pathsend extension) and ``--postgres URL`` (tree B on PostgreSQL, the same files loaded
into ``WORK/data-pg`` by ``load_assay.py``; the CPU of its PostgreSQL backends is counted with
the server's; with ``--postgres-a`` tree A on it too). Pages are also measured at 50 clients
(the p99 target of issue 17).

Usage:
  git archive BASE src | tar -x -C /tmp/base
  python bench/index/ab_files.py --work /tmp/rp-bench --a /tmp/base/src --b src --rounds 2
  ASSAY_DATABASE_URL=postgresql://.../rpbench PYTHONPATH=src python bench/index/load_assay.py \
      /tmp/rp-bench/data-pg /tmp/rp-bench/dists --projects 300
  python bench/index/ab_files.py ... --granian --postgres postgresql://.../rpbench
Prints a line per run, then one JSON object: per server and workload the runs' CPU ms per
request (median), requests/s, p50, p99 and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import bench

HERE = Path(__file__).resolve().parent

NGINX_CONF = """
{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{ alias {files}/; }}
        location /simple/ {{ root {pages}; index index.html; default_type text/html; }}
    }}
}}
"""

PATHS_LUA = """
local paths = {}
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
local counter = 1
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args)
  counter = 1 + (id * 7919) % #paths
  local accept = os.getenv("ACCEPT") or ""
  if accept ~= "" then wrk.headers["Accept"] = accept end
end
function request()
  local p = paths[counter]
  counter = counter + 1
  if counter > #paths then counter = 1 end
  return wrk.format("GET", p)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "status_errors": %d, ' ..
    '"read_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d}\\n', summary.requests,
    summary.duration, summary.bytes, e.status, e.read, e.timeout, latency:percentile(50),
    latency:percentile(99)))
end
"""

WORKLOADS = ("pages", "small files", "1 MiB file", "20 MiB file")


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})})


def populate(work: Path, projects: int, tree: Path) -> Path:
    data = work / "data"
    if (work / "populated").exists():
        return data
    dists = work / "dists"
    env = {"PYTHONPATH": str(tree)}
    run([sys.executable, str(HERE / "gen.py"), str(dists), "--projects", str(projects)], env)
    run([sys.executable, str(HERE / "load_assay.py"), str(data), str(dists), "--projects", str(projects)], env)
    (work / "populated").write_text("ok\n")
    return data


def path_lists(work: Path, data: Path, projects: int) -> dict[str, Path]:
    with sqlite3.connect(data / "assay.db") as conn:
        keys = sorted(k for (k,) in conn.execute("SELECT blob_key FROM files"))
    wheels = [k for k in keys if k.endswith(".whl")]
    big = {"1 MiB file": wheels[-1], "20 MiB file": wheels[-2]}
    for name, size in (("1 MiB file", 1 << 20), ("20 MiB file", 20 << 20)):
        blob = data / "files" / big[name]
        if blob.stat().st_size != size:
            blob.write_bytes(random.Random(size).randbytes(size))
    small = [k for k in keys if k not in big.values()]
    rng = random.Random(1)
    lists = {
        "pages": [f"/simple/bench-pkg-{rng.randrange(projects):05d}/" for _ in range(100_000)],
        "small files": [f"/files/{small[rng.randrange(len(small))]}" for _ in range(100_000)],
        "1 MiB file": [f"/files/{big['1 MiB file']}"],
        "20 MiB file": [f"/files/{big['20 MiB file']}"],
    }
    # The warm-up of the small files asks for each once (a file's first request reads its row
    # and its bytes: ~1 ms, which would otherwise be spread over the measured run).
    lists["small files (each once)"] = [f"/files/{k}" for k in small]
    out = {}
    for name, paths in lists.items():
        f = work / f"paths-{name.replace(' ', '-')}.txt"
        f.write_text("".join(p + "\n" for p in paths))
        out[name] = f
    return out


def write_pages(work: Path, port: int, projects: int) -> Path:
    """Each simple page as assay serves it, under pages/simple/<name>/index.html."""
    pages = work / "pages"
    for i in range(projects):
        name = f"bench-pkg-{i:05d}"
        target = pages / "simple" / name / "index.html"
        if target.exists():
            continue
        req = urllib.request.Request(f"http://127.0.0.1:{port}/simple/{name}/", headers={"Accept": "text/html"})
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - a loopback http URL
            body = resp.read()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return pages


def wrk(port: int, paths: Path, conns: int, seconds: float) -> dict[str, float]:
    lua = paths.parent / "paths.lua"
    lua.write_text(PATHS_LUA)
    env = {**os.environ, "PATHS": str(paths), "ACCEPT": "text/html"}
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--timeout=30s", "-s", str(lua)]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}"], env=env, check=True, capture_output=True, text=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRKJSON "))
    result: dict[str, float] = json.loads(line.removeprefix("WRKJSON "))
    return result


#: (workload, path list, clients): the four at --connections, and pages again at 50 clients
#: (the issue's p99 target).
def workloads(connections: int) -> list[tuple[str, str, int]]:
    rows = [(f"{w} @{connections}", w, connections) for w in WORKLOADS]
    return [*rows[:1], ("pages @50", "pages", 50), *rows[1:]]


def pg_backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends serving ``url``'s database (its server's pool and listener)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def pg_sessions(url: str) -> int:
    """Sessions ever opened on ``url``'s database (PostgreSQL 14+ ``pg_stat_database.sessions``;
    a backend reports its own when it ends or within about a second)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--a", type=Path, required=True, help="src/ of the first assay tree (before)")
    ap.add_argument("--b", type=Path, required=True, help="src/ of the second assay tree (after)")
    ap.add_argument("--projects", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--granian", action="store_true", help="also tree B under `assay serve --server granian`")
    ap.add_argument(
        "--postgres",
        help="also tree B on this PostgreSQL database, populated by load_assay.py into WORK/data-pg "
        "(ASSAY_DATABASE_URL=... load_assay.py WORK/data-pg DISTS); its backends' CPU is counted",
    )
    ap.add_argument(
        "--postgres-a", action="store_true", help="with --postgres: tree A on that database too (row 'assay A PG')"
    )
    ap.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of the warm-up run before each measured run"
    )
    ap.add_argument(
        "--idle",
        type=float,
        default=0.0,
        help="seconds without a request before each measured run (after the settle); beyond "
        "serial_poll_seconds every answer a PostgreSQL server kept has expired, as after a quiet spell",
    )
    ap.add_argument("--servers", nargs="*", help="only these rows (names as printed)")
    ap.add_argument("--workloads", nargs="*", help="only these workloads (names as printed, e.g. 'pages @50')")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    trees = {"assay A": str(args.a.resolve()), "assay B": str(args.b.resolve())}
    data = populate(work, args.projects, args.b.resolve())
    lists = path_lists(work, data, args.projects)
    if args.postgres:
        # The same files (keys are content-addressed): the two large blobs made large there too.
        for name in ("1 MiB file", "20 MiB file"):
            key = lists[name].read_text().strip().removeprefix("/files/")
            (work / "data-pg" / "files" / key).write_bytes((data / "files" / key).read_bytes())
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")

    def server(name: str, port: int) -> bench.Server:
        if name == "nginx":
            tmp = work / "nginx"
            tmp.mkdir(exist_ok=True)
            conf = tmp / "nginx.conf"
            # As root nginx's worker would drop to "nobody", who cannot read the 0700 data directory.
            user = "user root;\n" if os.geteuid() == 0 else ""
            conf.write_text(
                NGINX_CONF.format(user=user, tmp=tmp, port=port, files=data / "files", pages=work / "pages")
            )
            return bench.Server(name, "", ["nginx", "-c", str(conf), "-p", str(tmp)], "/simple/", ["html"])
        tree = trees["assay A" if name.startswith("assay A") else "assay B"]
        where = ["--data-dir", str(data)]
        env = {"PYTHONPATH": tree}
        if name.endswith(" PG"):
            where = ["--data-dir", str(work / "data-pg")]
            env["ASSAY_DATABASE_URL"] = args.postgres
        extra = ["--server", "granian"] if name.endswith(" granian") else []
        cmd = [sys.executable, "-m", "assay", "serve", *where, "--port", str(port), *extra]
        return bench.Server(name, "", cmd, "/simple/", ["html"], env=env)

    port = bench.free_port()
    with bench.running(server("assay B", port), port, work / "pages.log"):
        write_pages(work, port, args.projects)

    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    order = ["assay A", "assay B"]
    if args.granian:
        order.append("assay B granian")
    if args.postgres:
        order += ["assay A PG", "assay B PG"] if args.postgres_a else ["assay B PG"]
    order.append("nginx")
    if args.servers:
        order = [n for n in order if n in args.servers]
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            port = bench.free_port()
            with bench.running(server(name, port), port, work / f"{name.replace(' ', '-')}.log") as proc:
                for workload, paths, conns in workloads(args.connections):
                    if args.workloads and workload not in args.workloads:
                        continue
                    if paths == "small files":  # each once first: a file's first request costs ~1 ms
                        each = lists["small files (each once)"]
                        wrk(port, each, conns, 2 + len(each.read_text().splitlines()) // 400)
                    wrk(port, lists[paths], conns, args.warmup)  # warm-up (caches, page cache)
                    bench.settle(proc.pid, 10)
                    time.sleep(args.idle)
                    pids = bench.tree_pids(proc.pid)
                    backends = pg_backend_pids(args.postgres) if name.endswith(" PG") else []
                    sessions = pg_sessions(args.postgres) if backends else 0
                    before = bench.cpu_ticks(pids) + bench.cpu_ticks(backends)
                    res = wrk(port, lists[paths], conns, args.seconds)
                    if backends:  # a backend that connected during the run counts from zero
                        backends = sorted(set(backends) | set(pg_backend_pids(args.postgres)))
                    cpu_ms = (bench.cpu_ticks(pids) + bench.cpu_ticks(backends) - before) * tick_ms
                    row = {
                        "cpu_ms_per_req": round(cpu_ms / max(res["requests"], 1), 4),
                        "req_s": round(res["requests"] / (res["duration_us"] / 1e6), 1),
                        "p50_ms": round(res["p50_us"] / 1000, 2),
                        "p99_ms": round(res["p99_us"] / 1000, 2),
                        "errors": res["status_errors"] + res["read_errors"] + res["timeouts"],
                    }
                    if backends:  # opened during the run, less the harness's two (the count before
                        # the run and the backends after it); a backend reports its session within ~1 s
                        time.sleep(1.5)
                        row["pg_sessions"] = pg_sessions(args.postgres) - sessions - 2
                    results.setdefault(name, {}).setdefault(workload, []).append(row)
                    print(r, name, workload, json.dumps(row), flush=True)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name, per in results.items():
        for workload, rows in per.items():
            summary.setdefault(workload, {})[name] = {
                "cpu_ms_per_req": statistics.median(x["cpu_ms_per_req"] for x in rows),
                "req_s": statistics.median(x["req_s"] for x in rows),
                "p50_ms": statistics.median(x["p50_ms"] for x in rows),
                "p99_ms": statistics.median(x["p99_ms"] for x in rows),
            }
    for per_server in summary.values():
        n = per_server.get("nginx", {}).get("cpu_ms_per_req", 0.0)
        a = per_server.get("assay A", {}).get("cpu_ms_per_req", 0.0)
        ratios = {}
        for name in [k for k in per_server if k.startswith("assay")]:
            cpu = per_server[name]["cpu_ms_per_req"]
            ratios[f"{name} / nginx"] = round(cpu / n, 2) if n else 0.0
            ratios[f"{name} / assay A"] = round(cpu / a, 3) if a else 0.0
        per_server["ratios"] = ratios
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
