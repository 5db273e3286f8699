"""``assay verify`` of N attested files with the index's transparency-log checks and without
them (issue 13: target < 10% added, cold and warm), in one run, against one index.

Setup (not timed; bench/verify/bench.py's): a local Sigstore attests N wheels, a static PEP
740 index serves pages, files and provenance, and here also a log (bench/verify/serve_index.py
``--log``: one ``upload`` entry per file, tiles, a signed checkpoint, and every file's C2SP
tlog-proof receipt listed on its page, as ``assay serve`` offers them).

Timed, alternating, each a fresh process with its own empty cache and state directory per
cold/warm pair:

* ``without log, cold / warm``: the pins file pins the publishers only, so the receipts the
  pages offer are not checked (one warning);
* ``with log, cold``: the log key pinned too: every receipt fetched and checked (entry,
  inclusion proof, checkpoint signature), the current checkpoint fetched and, as the state
  directory is empty, stored;
* ``with log, warm``: ``--offline``: the receipts from the cache, checked again.

Usage (from the repository root):

    .venv/bin/python -m bench.verify.log_bench [--files 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import asdict
from pathlib import Path

import tomli_w
from bench.verify.bench import Sample, prepare, timed, write_lock_and_pins
from tests.support.server import client_environ
from tests.support.sigstore_authority import LocalSigstore


def run(work: Path, authority: LocalSigstore, pins: Path, cache: Path, *extra: str, log: bool) -> Sample:
    cmd = [sys.executable, "-m", "assay", "verify", "--format", "json", "-v", "--cache-dir", str(cache),
           "--pins", str(pins), "--trust-root", str(authority.trusted_root_path), *extra,
           str(work / "pylock.toml")]  # fmt: skip
    sample = Sample()
    proc = timed(cmd, client_environ({"XDG_STATE_HOME": str(cache.with_name(cache.name + "-state"))}), sample)
    if proc.returncode != 0:
        raise SystemExit(f"assay verify failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)["summary"]
    if summary["verified"] != sum(summary.values()):
        raise SystemExit(f"not everything verified: {summary}")
    # Online without the key pinned, assay says the receipts go unchecked; with it, it checks
    # them and keeps the log's checkpoint in the state directory.
    state = cache.with_name(cache.name + "-state") / "assay" / "log"
    if "--offline" not in extra and (
        ("is not pinned" in " ".join(proc.stderr.split())) == log or bool(list(state.glob("*.checkpoint"))) != log
    ):
        raise SystemExit(f"the log was {'not ' if log else ''}checked:\n{proc.stderr[-2000:]}")
    line = proc.stderr.strip().splitlines()[-1]
    sample.run = float(line.rsplit("; ", 1)[1].rstrip("s"))
    print(f"    {line} (process: {sample.wall:.2f}s wall, {sample.cpu:.2f}s CPU)", flush=True)
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5, help="cold/warm pairs per mode (median reported)")
    parser.add_argument("--work", type=Path, default=Path("bench/out/verify-log"))
    args = parser.parse_args()

    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"preparing {args.files} attested files in {work}", flush=True)
    authority = prepare(work, args.files)
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.verify.serve_index", str(work), "--log"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=client_environ(),
    )
    samples: dict[str, list[Sample]] = {k: [] for k in ("plain_cold", "plain_warm", "log_cold", "log_warm")}
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        if not line.startswith("serving "):
            raise SystemExit(f"the index did not start: {line!r}")
        index_url = line.removeprefix("serving ") + "/simple/"
        key = server.stdout.readline().strip().removeprefix("log-key ")
        write_lock_and_pins(work, args.files, index_url)
        plain = work / ".provenance.toml"
        with_log = work / ".provenance-log.toml"
        doc = tomllib.loads(plain.read_text())
        doc["log"] = {index_url: {"key": key}}
        with_log.write_text(tomli_w.dumps(doc))
        for i in range(args.runs):
            order = [("plain", plain), ("log", with_log)]
            for mode, pins in order if i % 2 == 0 else order[::-1]:
                cache = Path(tempfile.mkdtemp(prefix=f"bench-verify-log-{mode}-"))
                print(f"run {i + 1}: {mode} cold", flush=True)
                samples[f"{mode}_cold"].append(run(work, authority, pins, cache, log=mode == "log"))
                print(f"run {i + 1}: {mode} warm (--offline)", flush=True)
                samples[f"{mode}_warm"].append(run(work, authority, pins, cache, "--offline", log=mode == "log"))
                shutil.rmtree(cache, ignore_errors=True)
                shutil.rmtree(cache.with_name(cache.name + "-state"), ignore_errors=True)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)

    def median(values: list[Sample]) -> dict[str, float]:
        return {k: round(statistics.median(getattr(s, k) for s in values), 3) for k in ("wall", "cpu", "run")}

    medians = {k: median(v) for k, v in samples.items()}
    added = {
        f"{phase}_{k}_percent": round(100 * (medians[f"log_{phase}"][k] / medians[f"plain_{phase}"][k] - 1), 1)
        for phase in ("cold", "warm") for k in ("wall", "cpu", "run") if medians[f"plain_{phase}"][k] > 0
    }
    results = {
        "files": args.files,
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "runs": {k: [asdict(s) for s in v] for k, v in samples.items()},
        "median": medians,
        "added": added,
    }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({"median": medians, "added": added}, indent=2))


if __name__ == "__main__":
    main()
