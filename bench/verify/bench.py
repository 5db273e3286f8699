"""``assay verify`` against the existing tool's approach, on 500 locked files with provenance.

Setup (not timed): a local Sigstore (tests/support/sigstore_authority.py) attests N small
wheels, one project each, each signed by its own GitHub repository; a static PEP 740 index
(bench/verify/serve_index.py, its own process) serves their PEP 691 pages, files and Integrity
API provenance; a pylock.toml lists them and a .provenance.toml pins each project to its
repository and workflow.

Timed, in one run, each as a fresh process, wall clock:

* ``assay cold``: ``assay verify`` with an empty cache (fetch every page and provenance, verify);
* ``assay warm``: ``assay verify --offline`` with the cache the cold run filled (provenance,
  and the results of its checks: assay.verify.memo);
* ``assay warm --recheck``: the same, every attestation verified again from the cached
  provenance (what a run costs when its inputs changed, or on a CI runner with a new key);
* ``existing loop``: what pypi-verify-now does per package, ``pypi-attestations verify pypi
  --offline --provenance-file <provenance> --repository <url> <dist>``, once per file, in
  sequence. pypi-attestations can only verify against Sigstore's public-good root, read (in
  offline mode) from sigstore-python's TUF cache; each invocation runs with ``XDG_CACHE_HOME``
  pointing at a directory holding the local Sigstore's trusted_root.json at the path
  sigstore-python reads (``sigstore-python/tuf/<url-quoted TUF URL>/trusted_root.json``,
  sigstore/_internal/tuf.py), so both tools verify the same attestations under the same root.
  It is given the provenance files already on disk, so it does no network I/O at all: the
  comparison flatters it.

Usage (from the repository root):

    .venv/bin/python -m bench.verify.bench [--files 500] [--runs 3] [--loop-runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import tomli_w
from packaging.pylock import Package, PackageWheel, Pylock
from packaging.version import Version
from tests.support.dists import make_wheel, sha256
from tests.support.server import client_environ
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.static_index import provenance_document

from assay.publishers import GitHub

PRODUCTION_TUF = "https://tuf-repo-cdn.sigstore.dev"


def project(i: int) -> str:
    return f"bench-verify-{i:04d}"


def prepare(work: Path, count: int) -> LocalSigstore:
    """Distributions, provenance, lock and pins (reused if already there)."""
    authority = LocalSigstore(work / "sigstore")
    dists, provenance = work / "dists", work / "provenance"
    shutil.rmtree(dists, ignore_errors=True)
    shutil.rmtree(provenance, ignore_errors=True)
    dists.mkdir(parents=True)
    provenance.mkdir()
    for i in range(count):
        path = make_wheel(dists, project(i), "1.0.0")
        repository = f"bench-org/{project(i)}"
        attestation = authority.attest(path.name, sha256(path), CertIdentity.github(repository))
        document = provenance_document(
            [(GitHub(repository, "release.yml").to_publisher(), [attestation.model_dump(mode="json")])]
        )
        (provenance / f"{path.name}.provenance").write_bytes(document)
    return authority


def write_lock_and_pins(work: Path, count: int, index_url: str) -> Path:
    packages = []
    pins = {}
    for path in sorted((work / "dists").iterdir()):
        name = path.name.split("-", 1)[0].replace("_", "-")
        packages.append(
            Package(
                name=name,  # type: ignore[arg-type]
                version=Version("1.0.0"),
                index=index_url,
                wheels=[
                    PackageWheel(
                        name=path.name,
                        url=f"{index_url[: -len('/simple/')]}/files/{path.name}",
                        size=path.stat().st_size,
                        hashes={"sha256": sha256(path)},
                    )
                ],
            )
        )
        pins[name] = {"kind": "GitHub", "repository": f"bench-org/{name}", "workflow": "release.yml"}
    lock = Pylock(lock_version=Version("1.0"), created_by="bench", packages=packages)
    lock.validate()
    (work / "pylock.toml").write_text(tomli_w.dumps(lock.to_dict()))
    (work / ".provenance.toml").write_text(tomli_w.dumps({"packages": pins}))
    assert len(packages) == count
    return work / "pylock.toml"


@dataclass
class Sample:
    """One measured command: wall clock, and CPU seconds of it and its reaped children (its
    forked check workers), which depend far less than wall time on what else the machine runs."""

    wall: float = 0.0
    cpu: float = 0.0
    #: For assay: the run itself (from its -v line), without interpreter start and imports.
    run: float = 0.0


def timed(cmd: list[str], env: dict[str, str], sample: Sample) -> subprocess.CompletedProcess[str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    sample.wall += time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sample.cpu += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc


def assay_run(work: Path, authority: LocalSigstore, cache: Path, *extra: str, jobs: int) -> Sample:
    cmd = [sys.executable, "-m", "assay", "verify", "--format", "json", "-v",
           "--jobs", str(jobs), "--cache-dir", str(cache), "--pins", str(work / ".provenance.toml"),
           "--trust-root", str(authority.trusted_root_path), *extra, str(work / "pylock.toml")]  # fmt: skip
    sample = Sample()
    # The memo's key in a state directory of this run's own (next to its cache), not the user's.
    proc = timed(cmd, client_environ({"XDG_STATE_HOME": str(cache.with_name(cache.name + "-state"))}), sample)
    if proc.returncode != 0:
        raise SystemExit(f"assay verify failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)["summary"]
    if summary["verified"] != sum(summary.values()):
        raise SystemExit(f"not everything verified: {summary}")
    line = proc.stderr.strip().splitlines()[-1]
    sample.run = float(line.rsplit("; ", 1)[1].rstrip("s"))
    print(f"    {line} (process: {sample.wall:.2f}s wall, {sample.cpu:.2f}s CPU)", flush=True)
    return sample


def existing_loop(work: Path, authority: LocalSigstore) -> Sample:
    """pypi-attestations once per file, as pypi-verify-now runs it, sequentially."""
    xdg = Path(tempfile.mkdtemp(prefix="bench-verify-xdg-"))
    tuf = xdg / "sigstore-python" / "tuf" / quote(PRODUCTION_TUF, safe="")
    tuf.mkdir(parents=True)
    shutil.copy(authority.trusted_root_path, tuf / "trusted_root.json")
    env = {**client_environ(), "XDG_CACHE_HOME": str(xdg)}
    tool = str(Path(sys.executable).with_name("pypi-attestations"))
    sample = Sample()
    for path in sorted((work / "dists").iterdir()):
        repository = f"https://github.com/bench-org/{path.name.split('-', 1)[0].replace('_', '-')}"
        provenance = work / "provenance" / f"{path.name}.provenance"
        cmd = [tool, "verify", "pypi", "--offline", "--repository", repository,
               "--provenance-file", str(provenance), str(path)]  # fmt: skip
        proc = timed(cmd, env, sample)
        if proc.returncode != 0:
            raise SystemExit(f"pypi-attestations failed on {path.name}:\n{proc.stdout}{proc.stderr}")
    shutil.rmtree(xdg, ignore_errors=True)
    print(f"    {sample.wall:.1f}s wall, {sample.cpu:.1f}s CPU", flush=True)
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3, help="assay cold/warm runs (median reported)")
    parser.add_argument("--loop-runs", type=int, default=1, help="runs of the existing tool's loop")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("bench/out/verify"))
    args = parser.parse_args()

    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"preparing {args.files} attested files in {work}", flush=True)
    authority = prepare(work, args.files)
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.verify.serve_index", str(work)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=client_environ(),
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        if not line.startswith("serving "):
            raise SystemExit(f"the index did not start: {line!r}")
        index_url = line.removeprefix("serving ") + "/simple/"
        write_lock_and_pins(work, args.files, index_url)

        cold: list[Sample] = []
        warm: list[Sample] = []
        recheck: list[Sample] = []
        for run in range(args.runs):
            cache = Path(tempfile.mkdtemp(prefix="bench-verify-cache-"))
            print(f"run {run + 1}: assay cold", flush=True)
            cold.append(assay_run(work, authority, cache, jobs=args.jobs))
            print(f"run {run + 1}: assay warm (--offline)", flush=True)
            warm.append(assay_run(work, authority, cache, "--offline", jobs=args.jobs))
            print(f"run {run + 1}: assay warm (--offline --recheck)", flush=True)
            recheck.append(assay_run(work, authority, cache, "--offline", "--recheck", jobs=args.jobs))
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(cache.with_name(cache.name + "-state"), ignore_errors=True)
        loops = []
        for run in range(args.loop_runs):
            print(f"loop run {run + 1}: pypi-attestations verify pypi x {args.files}", flush=True)
            loops.append(existing_loop(work, authority))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)

    def median(samples: list[Sample]) -> dict[str, float]:
        return {key: round(statistics.median(getattr(s, key) for s in samples), 3) for key in ("wall", "cpu", "run")}

    medians = {
        "assay_cold": median(cold),
        "assay_warm": median(warm),
        "assay_warm_recheck": median(recheck),
        "existing_loop": median(loops),
    }
    results = {
        "files": args.files,
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "runs": {
            "assay_cold": [asdict(s) for s in cold],
            "assay_warm": [asdict(s) for s in warm],
            "assay_warm_recheck": [asdict(s) for s in recheck],
            "existing_loop": [asdict(s) for s in loops],
        },
        "median": medians,
        "speedup_cold_wall": round(medians["existing_loop"]["wall"] / medians["assay_cold"]["wall"], 1),
        "speedup_cold_cpu": round(medians["existing_loop"]["cpu"] / medians["assay_cold"]["cpu"], 1),
    }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
