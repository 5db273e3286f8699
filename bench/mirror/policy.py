"""The mirror's policy verification (issue 12): N attested upstream files, cold and warm.

Setup (not timed): bench/verify's files (a local Sigstore attests N wheels, one project each,
each signed by its own GitHub repository) served by its static PEP 740 index in its own
process; a pins file pinning every project to its repository.

Timed, in one process, for each policy, wall clock and CPU seconds (this process, its threads):

* ``cold``: an empty mirror database: every page fetched, every provenance fetched and verified
  (``require = "pinned"``), every first decision recorded;
* ``warm``: a new ``MirrorService`` on the database the cold run filled, pages within their
  TTL: the verification results come from ``mirror_verifications``, nothing is fetched;

side by side with the same two runs without a policy (pages only), so the difference is what
the policy costs. Pages are asked ``--concurrency`` at a time, as concurrent requests would.

Usage (from the repository root):

    .venv/bin/python -m bench.mirror.policy [--files 500] [--runs 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.verify.bench import prepare, project, write_lock_and_pins
from tests.support.server import client_environ

from assay.mirror.policy import Policy, empty_policy, parse_policy
from assay.mirror.service import MirrorService
from assay.storage.blobs import FilesystemBlobStore
from assay.storage.db import Database


@dataclass
class Sample:
    wall: float
    cpu: float
    checks: int
    visible: int


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _pages(db: Database, blobs: FilesystemBlobStore, trust: str, upstream: str, policy: Policy,
                 count: int, concurrency: int) -> Sample:  # fmt: skip
    semaphore = asyncio.Semaphore(concurrency)
    visible = 0
    async with MirrorService(db, blobs, trust_root=trust, page_ttl=3600, max_file_size=10**8) as svc:
        _ = svc.attestations.trust.verifier if policy.doc.provenance.require != "none" else None  # load once

        async def one(i: int) -> None:
            nonlocal visible
            async with semaphore:
                page = await svc.project_page(1, upstream, policy, project(i), base_url="http://bench")
                assert page.page is not None
                visible += len(page.page.files)

        wall, cpu = time.perf_counter(), _cpu()
        await asyncio.gather(*(one(i) for i in range(count)))
        return Sample(time.perf_counter() - wall, _cpu() - cpu, svc.attestations.checks_run, visible)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3, help="cold/warm runs per policy (median reported)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path("bench/out/mirror"))
    args = parser.parse_args()

    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"preparing {args.files} attested files in {work}", flush=True)
    authority = prepare(work, args.files)
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.verify.serve_index", str(work)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=client_environ(),
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        if not line.startswith("serving "):
            raise SystemExit(f"the index did not start: {line!r}")
        upstream = line.removeprefix("serving ") + "/simple/"
        write_lock_and_pins(work, args.files, upstream)
        pinned = parse_policy(
            '[provenance]\nrequire = "pinned"\npins = ".provenance.toml"\n',
            (work / ".provenance.toml").read_text(),
            source="bench policy",
        )
        trust = str(authority.trusted_root_path)
        results: dict[str, dict[str, list[Sample]]] = {}
        for label, policy in (("no policy", empty_policy()), ('require = "pinned"', pinned)):
            results[label] = {"cold": [], "warm": []}
            for run in range(args.runs):
                with tempfile.TemporaryDirectory(prefix="bench-mirror-") as tmp:
                    db = Database(f"sqlite:///{tmp}/assay.db")
                    db.migrate()
                    blobs = FilesystemBlobStore(Path(tmp) / "files")
                    for phase in ("cold", "warm"):
                        sample = asyncio.run(_pages(db, blobs, trust, upstream, policy, args.files, args.concurrency))
                        print(f"{label}, run {run + 1}, {phase}: {sample}", flush=True)
                        assert sample.visible == args.files
                        results[label][phase].append(sample)
                    db.dispose()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)

    print(f"\n{args.files} files, {args.files} projects, concurrency {args.concurrency}, median of {args.runs}")
    print("| policy | phase | wall | per file | CPU | CPU per file | checks run |")
    print("|---|---|---|---|---|---|---|")
    for label, phases in results.items():
        for phase, samples in phases.items():
            wall = statistics.median(s.wall for s in samples)
            cpu = statistics.median(s.cpu for s in samples)
            checks = statistics.median(s.checks for s in samples)
            print(
                f"| {label} | {phase} | {wall:.2f} s | {wall / args.files * 1000:.2f} ms | {cpu:.2f} s | "
                f"{cpu / args.files * 1000:.2f} ms | {checks:.0f} |"
            )


if __name__ == "__main__":
    main()
