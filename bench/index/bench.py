"""The index read-path benchmark (issue 2 item 9): assay, pypiserver and devpi-server side by side.

Everything lives under a work directory (default ``bench/out/index``, gitignored):

1. venvs: ``venv-assay`` (this checkout, installed non-editable), ``venv-pypiserver``
   (``pypiserver[cache]`` + waitress), ``venv-pypiserver-wd22`` (the same with ``watchdog<2.3``,
   see README: the cache extra is defeated by newer watchdog), ``venv-devpi`` (devpi-server);
2. ``dists/``: 10,000 projects x 5 versions x (wheel + sdist) = 100,000 files (gen.py);
3. population, timed: assay through its upload service (load_assay.py), devpi through
   devpi-import (load_devpi.py); pypiserver serves ``dists/`` as it is;
4. a check that the bulk-loaded assay index serves exactly what HTTP uploads produce (verify.py);
5. for each server and format: start it pinned to CPU 0, warm up, then wrk (pinned to CPU 1)
   at 1, 10 and 50 connections over the same pseudo-random project sequence; peak RSS of the
   server's process tree is sampled throughout;
6. a markdown table on stdout and ``results.json`` in the work directory.

Run through ``bench/index/run`` (it installs wrk). ``python3 bench.py --help`` lists options.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
HTML_ACCEPT = "text/html"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(*cmd: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], check=True, text=True, **kw)  # type: ignore[call-overload]


# ---------------------------------------------------------------- setup


def venv(work: Path, name: str, *requirements: str) -> Path:
    """A venv with ``requirements`` installed (once: a marker records what was asked for)."""
    path = work / name
    marker = path / ".bench-installed"
    wanted = "\n".join(requirements)
    if marker.exists() and marker.read_text() == wanted:
        return path
    if path.exists():
        shutil.rmtree(path)
    log(f"creating {name}: {' '.join(requirements)}")
    sh(sys.executable, "-m", "venv", path)
    with (work / f"pip-{name}.log").open("w") as out:
        try:
            sh(path / "bin/pip", "install", "--upgrade", "pip", stdout=out, stderr=subprocess.STDOUT)
            # Entries starting with "#" only key the marker (a source fingerprint).
            packages = [r for r in requirements if not r.startswith("#")]
            sh(path / "bin/pip", "install", *packages, stdout=out, stderr=subprocess.STDOUT)
        except subprocess.CalledProcessError:
            raise SystemExit(f"pip install failed; see {out.name}") from None
    marker.write_text(wanted)
    return path


def pip_versions(env: Path, *names: str) -> dict[str, str]:
    out = sh(env / "bin/python", "-m", "pip", "list", "--format=json", capture_output=True).stdout
    have = {p["name"].lower(): p["version"] for p in json.loads(out)}
    return {n: have.get(n.lower(), "-") for n in names}


def timed_step(
    work: Path, name: str, cmd: list[str | Path], extra: dict[str, object] | None = None
) -> dict[str, object]:
    """Run a population step once; its JSON output (timings) is kept in ``<name>.json``."""
    result_file = work / f"{name}.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    log(f"populating: {name} (this takes a while)")
    t0 = time.monotonic()
    out = sh(*cmd, capture_output=True).stdout
    data = json.loads(out.strip().splitlines()[-1])
    data["wall_seconds"] = round(time.monotonic() - t0, 1)
    data.update(extra or {})
    result_file.write_text(json.dumps(data))
    return data


# ---------------------------------------------------------------- measuring


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return total


def machine_busy_ticks() -> int:
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return sum(parts[:8]) - idle


class RssSampler(threading.Thread):
    """Peak RSS of a process tree (sum over the tree, sampled every 0.2 s)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            total = sum(rss_kib(p) for p in tree_pids(self.pid))
            self.peak_kib = max(self.peak_kib, total)
            self._stop_event.wait(0.2)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak_kib


@dataclass
class Server:
    name: str  # row label
    config: str  # how it runs, for the table
    cmd: list[str]
    prefix: str  # URL path before the project name
    formats: list[str]
    cpus: str = "0"
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    #: Client counts for this server (None: all of --connections).
    connections: list[int] | None = None


@contextlib.contextmanager
def running(server: Server, port: int, logfile: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **server.env}
    with logfile.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", server.cpus, *server.cmd],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=server.cwd,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}{server.prefix}bench-pkg-00000/"
            deadline = time.monotonic() + 300
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{server.name} exited at start; see {logfile}")
                try:
                    with urllib.request.urlopen(url, timeout=120) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} did not answer {url}; see {logfile}")
                time.sleep(0.5)
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wrk(port: int, prefix: str, accept: str, conns: int, seconds: int, paths: Path, timeout: int) -> dict[str, float]:
    env = {**os.environ, "PATHS": str(paths), "PREFIX": prefix, "ACCEPT": accept}
    cmd = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{seconds}s",
        f"--timeout={timeout}s",
        "-s",
        str(HERE / "random.lua"),
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    return json.loads(line.removeprefix("WRKJSON "))


def settle(pid: int, limit: float = 120.0) -> None:
    """Wait until the server has finished what an earlier run queued (a slow server may still
    be working through requests whose clients are gone): under 5% CPU for one second."""
    tick = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_ticks(tree_pids(pid))
        time.sleep(1.0)
        if cpu_ticks(tree_pids(pid)) - before < 0.05 * tick:
            return
    log(f"  server still busy after {limit:.0f} s; measuring anyway")


def bench_server(server: Server, args: argparse.Namespace, paths: Path, work: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in server.cmd]
    srv = Server(**{**server.__dict__, "cmd": cmd})
    log(f"starting {server.name}: {' '.join(cmd)}")
    with running(srv, port, work / f"log-{server.name.replace(' ', '_')}.txt") as proc:
        sampler = RssSampler(proc.pid)
        sampler.start()
        started_rss = sum(rss_kib(p) for p in tree_pids(proc.pid))
        for fmt in server.formats:
            accept = JSON_ACCEPT if fmt == "json" else HTML_ACCEPT
            log(f"  {server.name} {fmt}: warm-up {args.warmup} s")
            wrk(port, srv.prefix, accept, 10, args.warmup, paths, args.timeout)
            for conns in server.connections or args.connections:
                settle(proc.pid)
                pids = tree_pids(proc.pid)
                busy0, mine0, wall0 = machine_busy_ticks(), cpu_ticks(pids), time.monotonic()
                res = wrk(port, srv.prefix, accept, conns, args.duration, paths, args.timeout)
                busy1, mine1, wall1 = machine_busy_ticks(), cpu_ticks(tree_pids(proc.pid)), time.monotonic()
                secs = res["duration_us"] / 1e6
                window = wall1 - wall0  # CPU shares over the whole window, wrk's start and end included
                tick = os.sysconf("SC_CLK_TCK")
                errors = sum(
                    int(res[k]) for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
                )
                row = {
                    "server": server.name,
                    "format": fmt,
                    "connections": conns,
                    "requests": res["requests"],
                    "rps": round(res["requests"] / secs, 1),
                    "p50_ms": round(res["p50_us"] / 1000, 2),
                    "p99_ms": round(res["p99_us"] / 1000, 2),
                    "errors": errors,
                    "timeouts": res["timeouts"],
                    "server_cpu_pct": round(100 * (mine1 - mine0) / tick / window, 1),
                    # CPU time per request: the figure least disturbed by other load on the machine.
                    "cpu_ms_per_req": round(1000 * (mine1 - mine0) / tick / max(1, int(res["requests"])), 2),
                    # Everything busy on the machine minus the server (wrk and any other job).
                    "other_cpu_pct": round(100 * ((busy1 - busy0) - (mine1 - mine0)) / tick / window, 1),
                }
                rows.append(row)
                log(
                    f"    c={conns}: {row['rps']} req/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
                    f"errors {errors}, server CPU {row['server_cpu_pct']}%, other CPU {row['other_cpu_pct']}%"
                )
        peak = sampler.stop()
    for row in rows:
        row["peak_rss_mb"] = round(peak / 1024, 1)
        row["start_rss_mb"] = round(started_rss / 1024, 1)
    return rows


# ---------------------------------------------------------------- report


def markdown(rows: list[dict[str, object]], configs: dict[str, str]) -> str:
    lines = [
        "| server | format | clients | req/s | p50 ms | p99 ms | errors | server CPU % | CPU ms/req | other CPU % "
        "| peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['server']} | {r['format']} | {r['connections']} | {r['rps']} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['errors']} | {r['server_cpu_pct']} | {r['cpu_ms_per_req']} | {r['other_cpu_pct']} "
            f"| {r['peak_rss_mb']} |"
        )
    lines += ["", "| server | configuration |", "|---|---|"]
    lines += [f"| {name} | {cfg} |" for name, cfg in configs.items()]
    # Ratios: each assay row against each peer, same format and client count; throughput and
    # CPU per request (the latter is what a busy shared machine disturbs least).
    assays = [name for name in configs if name.startswith("assay")]
    peers = [name for name in configs if not name.startswith("assay")]
    by_key = {(r["server"], r["format"], r["connections"]): r for r in rows}
    ratio_lines = []
    for a_name in assays:
        for p_name in peers:
            for fmt in ("html", "json"):
                for conns in sorted({int(r["connections"]) for r in rows}):  # type: ignore[call-overload]
                    a = by_key.get((a_name, fmt, conns))
                    p = by_key.get((p_name, fmt, conns))
                    if a is None or p is None:
                        continue
                    # A peer that completed no request in the run has no ratio.
                    thr = f"{float(a['rps']) / float(p['rps']):.1f}x" if float(p["rps"]) else "-"
                    cpu = (
                        f"{float(p['cpu_ms_per_req']) / float(a['cpu_ms_per_req']):.1f}x"
                        if float(a["cpu_ms_per_req"]) and int(p["requests"])  # type: ignore[call-overload]
                        else "-"
                    )
                    ratio_lines.append(f"| {a_name} | {p_name} | {fmt} | {conns} | {thr} | {cpu} |")
    if ratio_lines:
        lines += [
            "",
            "| assay | vs | format | clients | throughput ratio | CPU-per-request ratio |",
            "|---|---|---|---:|---:|---:|",
            *ratio_lines,
        ]
    return "\n".join(lines)


def source_fingerprint() -> str:
    """HEAD plus a digest of uncommitted changes under src/: what venv-assay was built from."""
    import hashlib

    try:
        head = sh("git", "-C", REPO, "rev-parse", "HEAD", capture_output=True).stdout.strip()
        diff = sh("git", "-C", REPO, "diff", "HEAD", "--", "src", capture_output=True).stdout
        untracked = sh(
            "git", "-C", REPO, "ls-files", "--others", "--exclude-standard", "src", capture_output=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    digest = hashlib.sha256(diff.encode())
    for name in sorted(untracked):
        digest.update(name.encode() + (REPO / name).read_bytes())
    return head[:12] + ("+" + digest.hexdigest()[:12] if diff or untracked else "")


def git_state() -> str:
    try:
        head = sh("git", "-C", REPO, "rev-parse", "--short", "HEAD", capture_output=True).stdout.strip()
        dirty = sh("git", "-C", REPO, "status", "--porcelain", "src", capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in src/" if dirty else "")


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "bench/out/index")
    ap.add_argument("--projects", type=int, default=10_000)
    ap.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=10, help="seconds of warm-up per server and format")
    ap.add_argument("--timeout", type=int, default=30, help="wrk request timeout, seconds")
    ap.add_argument("--connections", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument(
        "--servers",
        nargs="+",
        default=["assay", "assay-w2", "pypiserver", "pypiserver-wd22", "devpi"],
        help="which rows to run",
    )
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--skip-verify", action="store_true")
    ap.add_argument(
        "--populate-only",
        action="store_true",
        help="generate and load the data, then stop (population need not run on an idle machine)",
    )
    ap.add_argument(
        "--assay-rev",
        help="benchmark assay as of this git revision instead of the checkout's working tree",
    )
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()

    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("wrk and taskset are needed: run bench/index/run (it installs them)")

    # assay from the checkout (reinstalled whenever its code changes, HEAD or uncommitted edits
    # under src/), or from one commit (--assay-rev).
    if args.assay_rev:
        rev = sh("git", "-C", REPO, "rev-parse", args.assay_rev, capture_output=True).stdout.strip()
        source = rev[:12]
        assay_src = work / f"assay-src-{source}"
        if not assay_src.exists():
            tmp = work / f".assay-src-{source}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
            tmp.rename(assay_src)
    else:
        source = source_fingerprint()
        assay_src = REPO
    v_assay = venv(work, "venv-assay", str(assay_src), "twine", f"# source {source}")
    v_pps = venv(work, "venv-pypiserver", "pypiserver[cache]", "waitress")
    v_pps22 = venv(work, "venv-pypiserver-wd22", "pypiserver[cache]", "waitress", "watchdog<2.3")
    v_devpi = venv(work, "venv-devpi", "devpi-server")

    dists = work / "dists"
    sh(v_assay / "bin/python", HERE / "gen.py", dists, "--projects", str(args.projects))
    try:  # the time of the run that generated them (gen.py skips files already there)
        gen_seconds = float(json.loads((work / f"dists.complete-{args.projects}").read_text())["seconds"])
    except (ValueError, KeyError, TypeError):
        gen_seconds = float("nan")

    assay_data = work / "assay-data"
    # The index must be served by the code that wrote it (the schema may change between commits).
    marker = work / "populate-assay.json"
    if marker.exists():
        populated_by = json.loads(marker.read_text()).get("source")
        if populated_by != source:
            raise SystemExit(
                f"{assay_data} was populated by assay {populated_by}, this run uses {source}: delete it and "
                f"{marker} to populate again (about 20 min on an idle machine), or pass --assay-rev {populated_by}"
            )
    else:
        shutil.rmtree(assay_data, ignore_errors=True)
    pop_assay = timed_step(
        work,
        "populate-assay",
        [
            v_assay / "bin/python",
            HERE / "load_assay.py",
            assay_data,
            dists,
            "--projects",
            str(args.projects),
            "--jobs",
            "2",
        ],
        {"source": source},
    )
    devpi_dir = work / "devpi-server"
    pop_devpi = timed_step(
        work,
        "populate-devpi",
        [
            v_devpi / "bin/python",
            HERE / "load_devpi.py",
            devpi_dir,
            dists,
            work / "devpi-dump",
            "--projects",
            str(args.projects),
        ],
    )
    log(f"population: assay {pop_assay}, devpi {pop_devpi}")

    if not args.skip_verify:
        sh(v_assay / "bin/python", HERE / "verify.py", assay_data, dists, work / "verify-data")
    if args.populate_only:
        return

    # The request sequence: the same for every server.
    rng = random.Random(args.seed)
    paths = work / "paths.txt"
    paths.write_text("".join(f"bench-pkg-{rng.randrange(args.projects):05d}\n" for _ in range(200_000)))

    versions = {
        "assay": pip_versions(v_assay, "assay", "uvicorn", "starlette", "sqlalchemy", "uvloop", "httptools"),
        "pypiserver": pip_versions(v_pps, "pypiserver", "waitress", "watchdog"),
        "pypiserver-wd22": pip_versions(v_pps22, "pypiserver", "waitress", "watchdog"),
        "devpi": pip_versions(v_devpi, "devpi-server", "waitress", "pyramid"),
    }
    fmt_versions = {k: ", ".join(f"{n} {v}" for n, v in d.items()) for k, d in versions.items()}

    servers = {
        "assay": Server(
            "assay",
            f"`assay serve` defaults (1 worker, uvicorn + uvloop + httptools, SQLite); {fmt_versions['assay']}",
            [str(v_assay / "bin/assay"), "serve", "--data-dir", str(assay_data), "--port", "{port}"],
            "/simple/",
            ["html", "json"],
        ),
        "assay-w2": Server(
            "assay --workers 2",
            "`assay serve --workers 2`, both CPUs (shared with wrk)",
            [str(v_assay / "bin/assay"), "serve", "--data-dir", str(assay_data), "--port", "{port}", "--workers", "2",
             "--allowed-host", "127.0.0.1"],
            "/simple/",
            ["html", "json"],
            cpus="0,1",
        ),
        "pypiserver": Server(
            "pypiserver",
            "`pypi-server run --backend cached-dir` (server auto = waitress, 4 threads), "
            f"files from one directory; {fmt_versions['pypiserver']}",
            [
                str(v_pps / "bin/pypi-server"),
                "run",
                "-p",
                "{port}",
                "-i",
                "127.0.0.1",
                "-a",
                ".",
                "-P",
                ".",
                "--disable-fallback",
                "--backend",
                "cached-dir",
                str(dists),
            ],
            "/simple/",
            ["html"],
            # Each request re-lists the directory (tens of seconds at 100,000 files): with more
            # clients every request times out and the queue outlives the run.
            connections=[1, 10],
        ),
        "pypiserver-wd22": Server(
            "pypiserver (watchdog<2.3)",
            "as above with watchdog pinned below 2.3 so its cache is not invalidated by reads; "
            + fmt_versions["pypiserver-wd22"],
            [
                str(v_pps22 / "bin/pypi-server"),
                "run",
                "-p",
                "{port}",
                "-i",
                "127.0.0.1",
                "-a",
                ".",
                "-P",
                ".",
                "--disable-fallback",
                "--backend",
                "cached-dir",
                str(dists),
            ],
            "/simple/",
            ["html"],
        ),
        "devpi": Server(
            "devpi",
            "`devpi-server` defaults (waitress, 50 threads, keyfs cache 10000), private index bench/idx; "
            + fmt_versions["devpi"],
            [
                str(v_devpi / "bin/devpi-server"),
                "--serverdir",
                str(devpi_dir),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],
            "/bench/idx/+simple/",
            ["html", "json"],
        ),
    }

    rows: list[dict[str, object]] = []
    configs: dict[str, str] = {}
    for key in args.servers:
        server = servers[key]
        configs[server.name] = server.config
        rows += bench_server(server, args, paths, work)

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.platform()}, "
        + f"Python {platform.python_version()}",
        "projects": args.projects,
        "files": args.projects * 10,
        "gen_seconds": round(gen_seconds, 1),
        "populate_assay": pop_assay,
        "populate_devpi": pop_devpi,
        "duration": args.duration,
        "warmup": args.warmup,
        "total_seconds": round(time.monotonic() - t_start),
        "command": " ".join(sys.argv),
        "checkout": git_state(),
        "assay_source": source,
    }
    (work / "results.json").write_text(json.dumps({"meta": meta, "configs": configs, "rows": rows}, indent=1))
    print(json.dumps(meta, indent=1))
    print()
    print(markdown(rows, configs))


if __name__ == "__main__":
    main()
