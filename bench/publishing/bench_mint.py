"""Trusted Publishing token exchange benchmark (issue 3): ``POST /_/oidc/mint-token`` on a real
``assay serve``, with a warm key cache.

For each database (SQLite, the default; PostgreSQL 15 on a fresh database) and each worker count
(1, 2) it starts the server, a local OIDC issuer (tests/support/oidc_provider.py, real RS256
JWTs, discovery + JWKS over HTTP), registers the issuer, a project and a GitHub publisher with the
real ``assay admin`` CLI, then:

1. times the first exchange (the server fetches the issuer's discovery document and JWKS), and
   warms every worker's key cache (excluded from everything below);
2. sequential latency: N exchanges one after another on one keep-alive connection, each with
   its own fresh JWT (each jti is accepted once), all signed before the clock starts;
3. throughput with 1, 4 and 16 concurrent clients (httpx.AsyncClient, keep-alive, one
   connection per client);
4. (1 worker) a py-spy profile of the server during a further sequential run, split into the
   exchange's steps and into kinds of work.

The issuer's request log is checked afterwards: keys are fetched exactly once per worker, so
every timed exchange ran with a warm cache. Every timed exchange must succeed (200).

Run through ``bench/publishing/run``; ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from common import (
    OUT,
    REPO,
    CpuSnapshot,
    CpuUse,
    classify,
    code_state,
    cpu_snapshot,
    log,
    machine_facts,
    package_versions,
    percentile,
    py_spy,
    read_collapsed,
    server_cpu_seconds,
    table,
    under,
)
from tests.support.oidc_provider import JWKS_ROUTE, OIDCProvider, github_claims
from tests.support.server import AssayServer

AUDIENCE = "assay"  # the index's default audience (Settings.oidc_audience)
PROJECT = "bench-tp"
REPOSITORY = "acme/bench-tp"
WORKFLOW = "release.yml"
#: JWT lifetime. GitHub's is 300 s; a little longer so a slow run never meets an expiry.
TOKEN_LIFETIME = 900


# ------------------------------------------------------------------ set-up


@contextlib.contextmanager
def database(kind: str) -> Iterator[str | None]:
    """None for SQLite (under the server's data dir), a fresh PostgreSQL database URL otherwise."""
    if kind == "sqlite":
        yield None
        return
    from tests.support.postgres import admin_url, fresh_database

    try:
        import psycopg

        psycopg.connect(admin_url(), connect_timeout=3).close()
    except Exception:
        log("PostgreSQL is not reachable: running scripts/postgres-up")
        subprocess.run(["bash", str(REPO / "scripts" / "postgres-up")], check=True)
    with fresh_database() as url:
        yield url


def background_publishers(server: AssayServer, issuer: str, count: int) -> None:
    """Other projects with their own GitHub publishers, so the publisher lookup runs on a table
    that is not trivially small (in-process, the functions `assay admin` calls)."""
    from assay.admin import accounts
    from assay.publishing import admin as padmin

    db = server.db()
    for i in range(count):
        name = f"other-{i:05d}"
        accounts.create_project(db, name, owner="owner", actor="admin:bench")
        padmin.add_publisher(
            db,
            kind_name="github",
            project=name,
            config={"repository": f"acme/{name}", "workflow": WORKFLOW},
            issuer=issuer,
            owner=None,
            pending_days=30,
            actor="admin:bench",
        )


def configure(server: AssayServer, idp: OIDCProvider, others: int) -> None:
    server.admin("issuer", "add", "--issuer", idp.issuer)
    server.admin("user", "create", "owner")
    server.admin("project", "create", PROJECT, "--owner", "owner")
    server.admin(
        "publisher", "add", "github", "--project", PROJECT, "--issuer", idp.issuer,
        "--repository", REPOSITORY, "--workflow", WORKFLOW,
    )  # fmt: skip
    if others:
        background_publishers(server, idp.issuer, others)


def sign(idp: OIDCProvider, count: int) -> list[bytes]:
    claims = github_claims(REPOSITORY, WORKFLOW)
    return [
        json.dumps({"token": idp.token(AUDIENCE, claims, lifetime=TOKEN_LIFETIME)}).encode()
        for _ in range(count)
    ]


def jwks_fetches(idp: OIDCProvider) -> int:
    return sum(1 for path in idp.requests_log if path.endswith(JWKS_ROUTE))


def check(response: httpx.Response) -> None:
    if response.status_code != 200 or not response.json().get("token"):
        raise RuntimeError(f"exchange failed: HTTP {response.status_code} {response.text[:300]}")


HEADERS = {"Content-Type": "application/json"}


def warm(server: AssayServer, idp: OIDCProvider, workers: int) -> float:
    """Time the first exchange (keys fetched), then exchange on fresh connections until every
    worker has fetched the keys, then a few more on keep-alive. Returns the first's seconds."""
    bodies = iter(sign(idp, 400))
    with server.client() as http:
        t0 = time.perf_counter()
        check(http.post("/_/oidc/mint-token", content=next(bodies), headers=HEADERS))
        first = time.perf_counter() - t0
    attempts = 0
    while jwks_fetches(idp) < workers:
        attempts += 1
        if attempts > 300:
            raise RuntimeError(f"only {jwks_fetches(idp)} of {workers} workers fetched keys")
        with server.client() as http:  # a new connection: the kernel may hand it to another worker
            check(http.post("/_/oidc/mint-token", content=next(bodies), headers=HEADERS))
    with server.client() as http:
        for _ in range(50):
            check(http.post("/_/oidc/mint-token", content=next(bodies), headers=HEADERS))
    return first


# ------------------------------------------------------------------ measurements


@dataclass
class Phase:
    count: int
    seconds: float
    latencies: list[float] = field(repr=False)
    cpu: CpuUse
    server_cpu_per_exchange: float

    def summary(self) -> dict[str, float]:
        lat = self.latencies
        return {
            "count": self.count,
            "seconds": self.seconds,
            "per_second": self.count / self.seconds,
            "p50_ms": percentile(lat, 50) * 1000,
            "p90_ms": percentile(lat, 90) * 1000,
            "p99_ms": percentile(lat, 99) * 1000,
            "mean_ms": sum(lat) / len(lat) * 1000,
            "max_ms": max(lat) * 1000,
            "server_cpu_ms_per_exchange": self.server_cpu_per_exchange * 1000,
            **{f"cores_{k}": v for k, v in asdict(self.cpu).items()},
        }


def _phase(count: int, latencies: list[float], a: CpuSnapshot, b: CpuSnapshot) -> Phase:
    return Phase(count, b.wall - a.wall, latencies, CpuUse.between(a, b), server_cpu_seconds(a, b) / count)


def sequential(server: AssayServer, bodies: list[bytes]) -> Phase:
    assert server.proc is not None
    latencies = []
    with server.client() as http:
        a = cpu_snapshot(server.proc.pid)
        for body in bodies:
            t0 = time.perf_counter()
            response = http.post("/_/oidc/mint-token", content=body, headers=HEADERS)
            latencies.append(time.perf_counter() - t0)
            check(response)
        b = cpu_snapshot(server.proc.pid)
    return _phase(len(bodies), latencies, a, b)


async def _concurrent(url: str, bodies: list[bytes], clients: int, pgid: int, warmup: int) -> Phase:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        queue = iter(bodies)
        latencies: list[float] = []
        failures: list[str] = []

        async def client(record: bool, budget: list[int]) -> None:
            while budget[0] > 0:
                budget[0] -= 1
                body = next(queue)
                t0 = time.perf_counter()
                response = await http.post("/_/oidc/mint-token", content=body, headers=HEADERS)
                elapsed = time.perf_counter() - t0
                if response.status_code != 200:
                    failures.append(f"HTTP {response.status_code} {response.text[:200]}")
                if record:
                    latencies.append(elapsed)

        # Warm-up at this concurrency: opens the connections, starts the server's threads.
        budget = [warmup]
        await asyncio.gather(*(client(False, budget) for _ in range(clients)))
        timed = len(bodies) - warmup
        budget = [timed]
        a = cpu_snapshot(pgid)
        await asyncio.gather(*(client(True, budget) for _ in range(clients)))
        b = cpu_snapshot(pgid)
    if failures:
        raise RuntimeError(f"{len(failures)} exchanges failed, e.g. {failures[0]}")
    return _phase(timed, latencies, a, b)


def concurrent(server: AssayServer, bodies: list[bytes], clients: int, warmup: int) -> Phase:
    assert server.proc is not None
    return asyncio.run(_concurrent(server.url, bodies, clients, server.proc.pid, warmup))


# ------------------------------------------------------------------ profile

def _fn(frame: str) -> str:
    return frame.split(" (", 1)[0]


def step_of(frames: list[str]) -> str:
    """Which step of ``TrustedPublishing.mint`` a stack (below it) belongs to."""
    top = _fn(frames[0]) if frames else "(self)"
    if top == "TrustedPublishing._exchange":
        sub = _fn(frames[1]) if len(frames) > 1 else "(self)"
        if sub in ("TrustedPublishing._candidates", "TrustedPublishing._match"):
            return "publisher lookup: pending + registered (2 queries)"
        if sub == "TrustedPublishing._claim_jti":
            return "jti claim: delete expired, insert, flush"
        if sub in ("issue", "record", "stored_claims"):
            return "token + audit rows (objects)"
        return "publisher's projects (1 query)"
    return {
        "parse_request": "parse the request body",
        "unverified_issuer": "unverified iss (JWT parse 1)",
        "TrustedPublishing._issuer": "issuer lookup (own read transaction)",
        "verify": "JWT verify: header (parse 2), key, signature + claims (parse 3)",
        "_GeneratorContextManager.__enter__": "begin write transaction",
        "_GeneratorContextManager.__exit__": "commit: flush token/audit rows, COMMIT (+ fsync)",
    }.get(top, "other")


def steps(stacks: list[tuple[list[str], int]]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for frames, count in stacks:
        key = step_of(frames)
        counts[key] = counts.get(key, 0) + count
    return sorted(counts.items(), key=lambda kv: -kv[1])


#: Kinds of work (searched from the innermost frame outwards), after the database buckets.
WORK = [
    ("RSA signature check (cryptography)", [r"RSAAlgorithm\.verify", r"ECAlgorithm\.verify"]),
    ("PyJWT (base64, JSON, claim checks)", [r"\(jwt/"]),
    ("SQLAlchemy (statement building, compile cache, ORM, unit of work)", [r"\(sqlalchemy/"]),
    ("JSON", [r"\(json/"]),
    ("assay's own code", [r"\(assay/"]),
]


def work_of(frames: list[str]) -> str:
    names = [_fn(f) for f in frames]
    if "DefaultDialect.do_commit" in names or "Connection.commit" in names:
        return "database: COMMIT (SQLite: WAL write + fsync; PostgreSQL: round trip, WAL flush)"
    if frames and _fn(frames[-1]) == "Connection.wait":
        return "database: waiting for PostgreSQL (statements, round trips)"
    if any("(psycopg/" in f for f in frames) or "DefaultDialect.do_execute" in names:
        return "database driver: statements (send, convert; on SQLite also the execution)"
    return classify([(frames, 1)], WORK, "other (stdlib, C calls)")[0][0]


def works(stacks: list[tuple[list[str], int]]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for frames, count in stacks:
        key = work_of(frames)
        counts[key] = counts.get(key, 0) + count
    return sorted(counts.items(), key=lambda kv: -kv[1])


#: Leaf frames of a thread that is waiting (py-spy --idle records those too): an idle worker
#: thread, or the uvloop event loop waiting for I/O (uvloop's loop is C: its leaf is Runner.run).
IDLE_LEAVES = ("Condition.wait (threading", "Runner.run (asyncio/runners", "select (selectors", "sleep (")


def profile(server: AssayServer, idp: OIDCProvider, count: int, rate: int, out: Path) -> dict[str, object] | None:
    spy = py_spy()
    if spy is None:
        return None
    assert server.proc is not None
    raw = out / "mint-profile.txt"
    bodies = sign(idp, count)
    proc = subprocess.Popen(
        [str(spy), "record", "--pid", str(server.proc.pid), "--subprocesses", "--idle", "--nonblocking",
         "--rate", str(rate), "--format", "raw", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)  # let py-spy attach
    phase = sequential(server, bodies)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if not raw.exists():
        log(f"py-spy wrote no profile: {err.strip()[-400:]}")
        return None
    stacks = read_collapsed(raw)
    in_mint = under(stacks, "TrustedPublishing.mint")
    mint_samples = sum(c for _, c in in_mint)
    # Everything else that is not a waiting thread: the event loop's HTTP / ASGI work.
    rest = [(f, c) for f, c in stacks if not any(x.startswith("TrustedPublishing.mint (") for x in f)]
    busy_rest = [(f, c) for f, c in rest if f and not f[-1].startswith(IDLE_LEAVES)]
    per_exchange = 1000 / rate / count  # ms of one thread's time per sample, per exchange
    return {
        "count": count,
        "rate": rate,
        "latency_p50_ms": percentile(phase.latencies, 50) * 1000,
        "mean_ms": sum(phase.latencies) / count * 1000,
        "mint_ms": mint_samples * per_exchange,
        "http_ms": sum(c for _, c in busy_rest) * per_exchange,
        "steps": [(n, s * per_exchange) for n, s in steps(in_mint)],
        "work": [(n, s * per_exchange) for n, s in works(in_mint)],
        "raw": str(raw.relative_to(REPO)) if raw.is_relative_to(REPO) else str(raw),
    }


def cprofile_fallback(out: Path) -> None:
    """Without py-spy: cProfile of TrustedPublishing.mint in-process on a scratch SQLite index."""
    import cProfile
    import io
    import pstats

    from assay.admin import accounts
    from assay.config import load_settings
    from assay.publishing import admin as padmin
    from assay.publishing.service import TrustedPublishing
    from assay.storage.db import Database

    with tempfile.TemporaryDirectory() as tmp, OIDCProvider() as idp:
        settings = load_settings({"data_dir": tmp}, environ={})
        db = Database(settings.resolved_database_url)
        db.migrate()
        padmin.add_issuer(db, idp.issuer, jwks=None, algorithms=["RS256"], actor="bench")
        accounts.create_user(db, "owner", actor="bench")
        accounts.create_project(db, PROJECT, owner="owner", actor="bench")
        padmin.add_publisher(
            db, kind_name="github", project=PROJECT, config={"repository": REPOSITORY, "workflow": WORKFLOW},
            issuer=idp.issuer, owner=None, pending_days=30, actor="bench",
        )  # fmt: skip
        tp = TrustedPublishing(db, settings)
        bodies = sign(idp, 520)
        for body in bodies[:20]:
            tp.mint(body)
        prof = cProfile.Profile()
        prof.enable()
        for body in bodies[20:]:
            tp.mint(body)
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(30)
        (out / "mint-cprofile.txt").write_text(text.getvalue())
        print("\ncProfile of TrustedPublishing.mint (500 calls, in-process, SQLite), top entries:\n")
        print("```\n" + "\n".join(text.getvalue().splitlines()[:45]) + "\n```")


# ------------------------------------------------------------------ driver


def run_config(args: argparse.Namespace, db_kind: str, workers: int, out: Path) -> dict[str, object]:
    label = f"{db_kind}, {workers} worker{'s' if workers > 1 else ''}"
    log(f"== {label}")
    result: dict[str, object] = {"database": db_kind, "workers": workers}
    with database(db_kind) as url, OIDCProvider() as idp, tempfile.TemporaryDirectory(dir=out) as data:
        server_args = ["--workers", str(workers), "--allowed-host", "127.0.0.1"] if workers > 1 else []
        # ASSAY_ACCESS_LOG=false: the default configuration (the test helper turns it on).
        server = AssayServer(Path(data), database_url=url, args=server_args, env={"ASSAY_ACCESS_LOG": "false"})
        server.start()
        try:
            configure(server, idp, args.other_publishers)
            result["first_exchange_ms"] = warm(server, idp, workers) * 1000
            fetched = jwks_fetches(idp)

            log(f"sequential: signing {args.sequential} JWTs")
            bodies = sign(idp, args.sequential)
            log(f"sequential: {args.sequential} exchanges")
            result["sequential"] = sequential(server, bodies).summary()

            levels = {}
            for clients in args.clients:
                warmup = max(20, clients * 4)
                bodies = sign(idp, args.throughput + warmup)
                log(f"throughput: {clients} client(s), {args.throughput} exchanges")
                levels[str(clients)] = concurrent(server, bodies, clients, warmup).summary()
            result["throughput"] = levels

            if args.profile and workers == 1:
                log(f"profile: py-spy on the server during {args.profile} sequential exchanges")
                result["profile"] = profile(server, idp, args.profile, args.profile_rate, out / db_kind)
            if jwks_fetches(idp) != fetched:
                raise RuntimeError("the server refetched keys during the timed phases (the cache was not warm)")
            result["jwks_fetches"] = fetched
        finally:
            server.stop()
    return result


def report(args: argparse.Namespace, results: list[dict[str, object]], facts: dict[str, str]) -> str:
    with_db = any(r["database"] != "sqlite" for r in results)
    out = [f"Command: `{args.command}`", ""]
    out += [f"- {facts['date']}; {facts['machine']}; {facts['python']}", f"- {facts['load']}", f"- {facts['versions']}",
            f"- {facts['code']}"]
    out += [
        f"- sequential: {args.sequential} exchanges on one keep-alive connection; throughput: "
        f"{args.throughput} exchanges per level after a warm-up; every JWT fresh (own jti), signed "
        f"before timing; key cache warm (JWKS fetched once per worker, checked); "
        f"{args.other_publishers} other projects with GitHub publishers in the database",
        "",
        "Sequential latency (one client):",
        "",
    ]
    rows = []
    for r in results:
        s = r["sequential"]
        assert isinstance(s, dict)
        rows.append([
            r["database"], r["workers"], f"{r['first_exchange_ms']:.1f}", f"{s['p50_ms']:.2f}", f"{s['p90_ms']:.2f}",
            f"{s['p99_ms']:.2f}", f"{s['mean_ms']:.2f}", f"{s['per_second']:.0f}",
            f"{s['server_cpu_ms_per_exchange']:.2f}", f"{s['cores_other']:.2f}",
        ])  # fmt: skip
    out.append(table(
        ["database", "workers", "first exchange, cold keys (ms)", "p50 (ms)", "p90 (ms)", "p99 (ms)", "mean (ms)",
         "exchanges/s", "server CPU per exchange (ms)", "other load (cores)"],
        rows,
    ))  # fmt: skip
    out += ["", "Throughput (concurrent clients, keep-alive):", ""]
    rows = []
    for r in results:
        levels = r["throughput"]
        assert isinstance(levels, dict)
        for clients, s in levels.items():
            rows.append([
                r["database"], r["workers"], clients, f"{s['per_second']:.0f}", f"{s['p50_ms']:.1f}",
                f"{s['p99_ms']:.1f}", f"{s['server_cpu_ms_per_exchange']:.2f}",
                *CpuUse(s["cores_server"], s["cores_database"], s["cores_client"], s["cores_other"]).cells(with_db),
            ])  # fmt: skip
    cores = ["server (cores)", *(["PostgreSQL (cores)"] if with_db else []), "client (cores)", "other load (cores)"]
    out.append(table(
        ["database", "workers", "clients", "exchanges/s", "p50 (ms)", "p99 (ms)", "server CPU per exchange (ms)",
         *cores],
        rows,
    ))  # fmt: skip
    for r in results:
        p = r.get("profile")
        if not isinstance(p, dict):
            continue
        out += [
            "",
            f"Where the time goes ({r['database']}, 1 worker; py-spy --idle at {p['rate']} Hz on the server during "
            f"{p['count']} sequential exchanges, mean latency {p['mean_ms']:.2f} ms; profile in `{p['raw']}`): "
            f"{p['mint_ms']:.2f} ms per exchange in `TrustedPublishing.mint` (worker thread, waits included), "
            f"{p['http_ms']:.2f} ms in the event loop (HTTP, ASGI, JSON response, thread hand-off), "
            f"the rest is the client and the loopback.",
            "",
        ]
        steps, work = p["steps"], p["work"]
        assert isinstance(steps, list)
        assert isinstance(work, list)
        out.append(table(["step of the exchange", "ms per exchange"], [[n, f"{v:.2f}"] for n, v in steps]))
        out.append("")
        out.append(table(["kind of work (innermost)", "ms per exchange"], [[n, f"{v:.2f}"] for n, v in work]))
    return "\n".join(out)


# ------------------------------------------------------------------ A/B comparison


def compare(args: argparse.Namespace, facts: dict[str, str]) -> str:
    """Servers from several source trees side by side (``--compare NAME=SRC``; the checkout is
    ``checkout``), on one machine at the same time: sequential exchanges interleaved between
    them (ABAB..., the order flipped every round), then throughput rounds alternating between
    them, so the machine's other load hits every variant alike."""
    variants = {"checkout": ""} if not args.baseline else {"baseline": str(Path(args.baseline).resolve())}
    for spec in args.compare:
        name, sep, src = spec.partition("=")
        if not sep or not Path(src, "assay").is_dir():
            raise SystemExit(f"--compare wants NAME=SRC with SRC/assay a source tree, got {spec!r}")
        variants[name] = str(Path(src).resolve())
    clients = max(args.clients)
    out = [f"Command: `{args.command}`", "", f"- {facts['date']}; {facts['machine']}; {facts['load']}",
           f"- {facts['code']}" + (f"; baseline: {args.baseline}" if args.baseline else " (the `checkout` variant)"),
           ""]
    rows = []
    for db_kind in args.databases:
        for workers in args.workers:
            log(f"== compare on {db_kind}, {workers} worker(s): {', '.join(variants)}")
            with contextlib.ExitStack() as stack:
                idp = stack.enter_context(OIDCProvider())
                servers = {}
                for name, src in variants.items():
                    url = stack.enter_context(database(db_kind))
                    data = stack.enter_context(tempfile.TemporaryDirectory(dir=args.out))
                    env = {"ASSAY_ACCESS_LOG": "false", **({"PYTHONPATH": src} if src else {})}
                    # Several workers need the names clients use (issue 16).
                    server_args = ["--workers", str(workers), "--allowed-host", "127.0.0.1"] if workers > 1 else []
                    server = AssayServer(Path(data), database_url=url, env=env, args=server_args)
                    server.start()
                    stack.callback(server.stop)
                    configure(server, idp, args.other_publishers)
                    warm(server, idp, workers)
                    servers[name] = server
                names = list(servers)
                https = {n: stack.enter_context(servers[n].client()) for n in names}
                bodies = {n: sign(idp, args.sequential) for n in names}
                latencies: dict[str, list[float]] = {n: [] for n in names}
                before = {n: cpu_snapshot(servers[n].proc.pid) for n in names}  # type: ignore[union-attr]
                for i in range(args.sequential):
                    for n in names if i % 2 == 0 else names[::-1]:
                        t0 = time.perf_counter()
                        response = https[n].post("/_/oidc/mint-token", content=bodies[n][i], headers=HEADERS)
                        latencies[n].append(time.perf_counter() - t0)
                        check(response)
                after = {n: cpu_snapshot(servers[n].proc.pid) for n in names}  # type: ignore[union-attr]
                rounds: dict[str, list[dict[str, float]]] = {n: [] for n in names}
                for r in range(2):
                    for n in names if r == 0 else names[::-1]:
                        warmup = max(20, clients * 4)
                        phase = concurrent(servers[n], sign(idp, args.throughput // 2 + warmup), clients, warmup)
                        rounds[n].append(phase.summary())
                for n in names:
                    lat = latencies[n]
                    got = rounds[n]
                    rows.append([
                        n, db_kind, workers, f"{percentile(lat, 50) * 1000:.2f}", f"{percentile(lat, 99) * 1000:.2f}",
                        f"{server_cpu_seconds(before[n], after[n]) / len(lat) * 1000:.2f}",
                        f"{sum(g['per_second'] for g in got) / len(got):.0f}",
                        f"{sum(g['p50_ms'] for g in got) / len(got):.0f}",
                        f"{sum(g['p99_ms'] for g in got) / len(got):.0f}",
                    ])  # fmt: skip
    out.append(table(
        ["variant", "database", "workers", "sequential p50 (ms)", "sequential p99 (ms)", "server CPU per exchange (ms)",
         f"exchanges/s, {clients} clients", f"p50 at {clients} clients (ms)", f"p99 at {clients} clients (ms)"],
        rows,
    ))  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--sequential", type=int, default=2000, help="sequential exchanges (default 2000)")
    parser.add_argument("--throughput", type=int, default=1000, help="exchanges per concurrency level (1000)")
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--other-publishers", type=int, default=200, help="background projects+publishers (200)")
    parser.add_argument("--profile", type=int, default=1000, help="exchanges profiled with py-spy (0: none)")
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second (200)")
    parser.add_argument("--out", type=Path, default=OUT / "publishing", help="work dir (bench/out/publishing)")
    parser.add_argument(
        "--compare", nargs="+", metavar="NAME=SRC", default=[],
        help="A/B mode: also run servers from these source trees (e.g. a patched copy of src/), interleaved with "
        "the checkout's; prints one comparison table",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", metavar="SRC",
        help="with --compare: the reference source tree instead of the checkout (e.g. a snapshot of src/ taken "
        "together with the patched copies, when others are changing the checkout meanwhile)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.command = "bench/publishing/run " + shlex.join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    for kind in args.databases:
        (args.out / kind).mkdir(exist_ok=True)
    facts = machine_facts()
    facts["code"] = code_state()
    facts["versions"] = package_versions(
        "uvicorn", "starlette", "sqlalchemy", "pyjwt", "cryptography", "psycopg", "httpx"
    )
    if args.compare:
        text = compare(args, facts)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (args.out / f"compare-{stamp}.md").write_text(text + "\n")
        print(text)
        return 0
    results = []
    started = time.perf_counter()
    for kind in args.databases:
        for workers in args.workers:
            results.append(run_config(args, kind, workers, args.out))
    if args.profile and py_spy() is None:
        cprofile_fallback(args.out)
    text = report(args, results, facts)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"results-{stamp}.json").write_text(json.dumps({"facts": facts, "results": results}, indent=1))
    (args.out / f"results-{stamp}.md").write_text(text + "\n")
    print(text)
    log(f"done in {time.perf_counter() - started:.0f} s; results in {args.out}/results-{stamp}.*")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
