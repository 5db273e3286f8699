"""Mixed load against ``assay serve --workers N`` on PostgreSQL (issue 6, item 3).

N concurrent clients, each with its own keep-alive connection (as pip and uv hold one), for a
bounded time, each request drawn at random from: a project page as HTML (PEP 503), a project
page as JSON (PEP 691), the project list, a file download, and an upload of a new file with an
API token. Downloads check the bytes against the sha256 the index lists, so corruption under load
is seen as it happens. Afterwards every upload the index accepted is downloaded again and
compared byte for byte, and ``assay admin fsck --grace 0`` must report nothing.

Prints a table and writes JSON: requests, throughput and p50/p99 latency per kind, status
counts. Exits 1 when any request got a 5xx or no answer, any accepted file is missing or
different, or fsck found a problem; so ``bench/load/run`` is a pass/fail check as well as a
measurement, and tests/reliability/test_load.py runs a short version of it in CI.

Usage: python bench/load/load.py [--seconds 120] [--clients 16] [--workers 2] [--json OUT]
       [--database-url URL] (default: a fresh database on the test PostgreSQL, dropped after)
       [--seed-projects 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import math
import os
import random
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.server import AssayServer  # noqa: E402
from tests.support.upload import form_for  # noqa: E402

JSON_V1 = "application/vnd.pypi.simple.v1+json"
#: Request mix (weights): reads dominate, as on any index.
MIX = {"html": 30, "json": 25, "list": 5, "download": 30, "upload": 10}
SEED_PROJECTS = 20
SEED_VERSIONS = 3


def wheel_bytes(name: str, version: str, payload: bytes) -> tuple[str, bytes]:
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    members = {
        f"{module}/__init__.py": b"",
        f"{module}/data.bin": payload,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: load\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: load\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    members[f"{dist_info}/RECORD"] = "".join(f"{m},,\n" for m in [*members, f"{dist_info}/RECORD"]).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return f"{module}-{version}-py3-none-any.whl", buf.getvalue()


@dataclass
class Known:
    """Files the index is known to hold: filename -> (absolute URL, sha256)."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    projects: list[str] = field(default_factory=list)
    uploaded: dict[str, bytes] = field(default_factory=dict)  # accepted during the run


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    errors: list[str] = field(default_factory=list)  # no answer at all
    corrupt: list[str] = field(default_factory=list)
    refused_uploads: list[str] = field(default_factory=list)


def _upload_request(filename: str, data: bytes, token: str) -> tuple[dict[str, str], dict[str, object]]:
    form = form_for(Path(filename), data)
    files = {"content": (filename, data, "application/octet-stream")}
    auth = httpx.BasicAuth("__token__", token)
    return form, {"files": files, "auth": auth}


async def client_loop(
    i: int, url: str, token: str, deadline: float, known: Known, stats: Stats, rng: random.Random
) -> None:
    kinds, weights = zip(*MIX.items(), strict=True)
    n = 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            started = time.perf_counter()
            try:
                if kind == "html":
                    r = await http.get(f"/simple/{rng.choice(known.projects)}/")
                elif kind == "json":
                    r = await http.get(f"/simple/{rng.choice(known.projects)}/", headers={"Accept": JSON_V1})
                elif kind == "list":
                    r = await http.get("/simple/", headers={"Accept": JSON_V1})
                elif kind == "download":
                    filename = rng.choice(list(known.files))
                    file_url, digest = known.files[filename]
                    r = await http.get(file_url)
                    if r.status_code == 200 and hashlib.sha256(r.content).hexdigest() != digest:
                        stats.corrupt.append(filename)
                else:
                    n += 1
                    project = f"load-up-{i}"
                    filename, data = wheel_bytes(project, f"1.{n}", os.urandom(rng.randint(1_000, 60_000)))
                    form, extra = _upload_request(filename, data, token)
                    r = await http.post("/legacy/", data=form, **extra)  # type: ignore[arg-type]
                    if r.status_code == 200:
                        known.uploaded[filename] = data
                        if project not in known.projects:
                            known.projects.append(project)
                    else:
                        stats.refused_uploads.append(f"{filename}: {r.status_code} {r.text.strip()}")
            except httpx.HTTPError as exc:
                stats.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            stats.latencies[kind].append(time.perf_counter() - started)
            stats.statuses[kind][r.status_code] += 1


def seed(server: AssayServer, token: str, known: Known, projects: int) -> None:
    """Projects and files to read, uploaded before the clock starts."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for p in range(projects):
            project = f"load-seed-{p}"
            for v in range(SEED_VERSIONS):
                filename, data = wheel_bytes(project, f"0.{v}", os.urandom(20_000 + 1000 * p))
                form, extra = _upload_request(filename, data, token)
                r = http.post("/legacy/", data=form, **extra)  # type: ignore[arg-type]
                r.raise_for_status()
            known.projects.append(project)
            page_url = f"{server.url}/simple/{project}/"
            for f in http.get(page_url, headers={"Accept": JSON_V1}).json()["files"]:
                known.files[f["filename"]] = (urljoin(page_url, f["url"]), f["hashes"]["sha256"])


def verify_uploads(server: AssayServer, known: Known) -> tuple[int, list[str]]:
    """Every accepted upload is listed and downloads back byte-identical."""
    problems = []
    by_project: dict[str, dict[str, bytes]] = defaultdict(dict)
    for filename, data in known.uploaded.items():
        by_project[filename.split("-")[0].replace("_", "-")][filename] = data
    checked = 0
    with httpx.Client(timeout=60) as http:
        for project, files in by_project.items():
            page_url = f"{server.url}/simple/{project}/"
            listed = {f["filename"]: f for f in http.get(page_url, headers={"Accept": JSON_V1}).json()["files"]}
            for filename, data in files.items():
                checked += 1
                entry = listed.get(filename)
                if entry is None:
                    problems.append(f"lost: {filename}")
                    continue
                body = http.get(urljoin(page_url, entry["url"])).content
                if body != data or entry["hashes"]["sha256"] != hashlib.sha256(data).hexdigest():
                    problems.append(f"corrupt: {filename}")
    return checked, problems


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


async def drive(url: str, token: str, seconds: float, clients: int, known: Known, seed_value: int) -> Stats:
    stats = Stats()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(client_loop(i, url, token, deadline, known, stats, random.Random(seed_value + i)) for i in range(clients))
    )
    return stats


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
    else:
        with fresh_database() as fresh:
            yield fresh


def run(
    seconds: float, clients: int, workers: int, database_url: str | None = None, seed_projects: int = SEED_PROJECTS
) -> dict[str, object]:
    with database(database_url) as url, tempfile.TemporaryDirectory(prefix="assay-load-") as tmp:
        server = AssayServer(
            Path(tmp) / "data",
            database_url=url,
            args=["--workers", str(workers), "--allowed-host", "127.0.0.1"],
            env={"ASSAY_ACCESS_LOG": "false"},
        ).start()
        try:
            token = server.quick_token("load")
            known = Known()
            seed(server, token, known, seed_projects)
            started = time.monotonic()
            stats = asyncio.run(drive(server.url, token, seconds, clients, known, int(started)))
            elapsed = time.monotonic() - started
            checked, lost = verify_uploads(server, known)
            fsck = json.loads(server.cli("fsck", "--json", "--grace", "0", check=False).stdout)
        finally:
            server.stop()
    kinds = {}
    for kind in MIX:
        lat = stats.latencies.get(kind, [])
        kinds[kind] = {
            "requests": len(lat),
            "per_second": round(len(lat) / elapsed, 1),
            "p50_ms": round(percentile(lat, 0.50) * 1000, 1),
            "p99_ms": round(percentile(lat, 0.99) * 1000, 1),
            "statuses": dict(stats.statuses.get(kind, {})),
        }
    total = sum(k["requests"] for k in kinds.values())  # type: ignore[misc]
    server_errors = sum(n for c in stats.statuses.values() for code, n in c.items() if code >= 500)
    return {
        "clients": clients,
        "workers": workers,
        "seconds": round(elapsed, 1),
        "requests": total,
        "per_second": round(total / elapsed, 1),
        "server_errors": server_errors,
        "no_answer": stats.errors[:20],
        "no_answer_count": len(stats.errors),
        "corrupt_downloads": stats.corrupt,
        "refused_uploads": stats.refused_uploads[:20],
        "uploads_accepted": len(known.uploaded),
        "uploads_verified": checked,
        "lost_or_corrupt": lost,
        "fsck_problems": fsck["problems"],
        "fsck_files_checked": fsck["files_checked"],
        "kinds": kinds,
        "machine": f"{os.cpu_count()} CPUs",
    }


def failures(result: dict[str, object]) -> list[str]:
    out = []
    if result["server_errors"]:
        out.append(f"{result['server_errors']} responses were 5xx")
    if result["no_answer_count"]:
        out.append(f"{result['no_answer_count']} requests got no answer: {result['no_answer']}")
    if result["corrupt_downloads"]:
        out.append(f"corrupt downloads: {result['corrupt_downloads']}")
    if result["refused_uploads"]:
        out.append(f"uploads refused: {result['refused_uploads']}")
    if result["lost_or_corrupt"]:
        out.append(f"accepted uploads lost or corrupt: {result['lost_or_corrupt']}")
    if result["fsck_problems"]:
        out.append(f"fsck: {result['fsck_problems']}")
    if not result["uploads_accepted"]:
        out.append("no upload was accepted")
    return out


def table(result: dict[str, object]) -> str:
    lines = [
        f"{result['clients']} clients, {result['workers']} workers, PostgreSQL, {result['seconds']} s, "
        f"{result['machine']}: {result['requests']} requests ({result['per_second']}/s), "
        f"{result['server_errors']} 5xx, {result['uploads_accepted']} uploads accepted and verified, "
        f"fsck {'clean' if not result['fsck_problems'] else 'NOT clean'}",
        "",
        "| kind | requests | per second | p50 ms | p99 ms | statuses |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for kind, k in result["kinds"].items():  # type: ignore[attr-defined]
        lines.append(
            f"| {kind} | {k['requests']} | {k['per_second']} | {k['p50_ms']} | {k['p99_ms']} | {k['statuses']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seed-projects", type=int, default=SEED_PROJECTS, help="projects to read (3 files each)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args()
    result = run(args.seconds, args.clients, args.workers, args.database_url, args.seed_projects)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    problems = failures(result)
    for problem in problems:
        print("FAIL:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
