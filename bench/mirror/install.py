"""``uv pip install --no-cache`` of 30 interdependent packages through a mirror (warm) against
straight from its upstream, side by side in one run (issue 12, "Benchmark"; target: no slower).

Setup (not timed): an upstream ``assay serve`` holding 30 one-wheel projects ``bench-i-00`` ..
``bench-i-29``, each ``bench-i-<k>`` depending on ``bench-i-<k+1>`` and ``bench-i-<k+3>`` (when
they exist), so installing ``bench-i-00`` resolves all 30 through a graph, not a list; and the
index under test, another ``assay serve`` with a mirror index ``up`` of it (default policy).
Two installs through the mirror first make it warm: every page kept, every file and metadata
file fetched, checked and stored, then every decision made since the last commit (a commit,
here the first install's stored files, drops the decisions a server keeps: docs/mirrors.md).

Timed, alternating, ``--repeats`` times each: ``uv pip install --no-cache --target <fresh dir>
bench-i-00`` with ``--index-url`` the upstream's ``/simple/`` ("upstream") or the mirror's
``/up/simple/`` ("mirror"); wall time of the install, and the CPU the serving process(es) spent
(``/proc/<pid>/stat``): for "mirror" the index under test's (the upstream is not asked while
the pages are fresh), for "upstream" the upstream's.

Usage (from the repository root): ``.venv/bin/python -m bench.mirror.install [--repeats 7]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.mirror.pages import cpu
from tests.support.dists import make_wheel, metadata_text
from tests.support.server import AssayServer, client_environ
from tests.support.upload import upload
from uv import find_uv_bin

PACKAGES = 30


def _name(k: int) -> str:
    return f"bench-i-{k:02d}"


def _install(index_url: str, target: Path) -> subprocess.CompletedProcess[str]:
    cmd = [find_uv_bin(), "pip", "install", "--no-cache", "--index-url", index_url, "--python", sys.executable,
           "--target", str(target), _name(0)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=client_environ(), timeout=600)
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    installed = list(target.glob("*.dist-info"))
    assert len(installed) == PACKAGES, installed
    return result


def timed(server: AssayServer, index_url: str, target: Path) -> dict[str, float]:
    assert server.proc is not None
    shutil.rmtree(target, ignore_errors=True)
    c0, t0 = cpu(server.proc.pid), time.perf_counter()
    _install(index_url, target)
    return {"wall_s": time.perf_counter() - t0, "server_cpu_ms": (cpu(server.proc.pid) - c0) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        upstream = AssayServer(tmp / "upstream").start()
        index = AssayServer(tmp / "index").start()
        try:
            token = upstream.quick_token("bench")
            (tmp / "d").mkdir()
            with upstream.client() as up:
                for k in range(PACKAGES):
                    deps = "".join(f"Requires-Dist: {_name(d)}\n" for d in (k + 1, k + 3) if d < PACKAGES)
                    wheel = make_wheel(tmp / "d", _name(k), "1.0", metadata=metadata_text(_name(k), "1.0", extra=deps))
                    assert upload(up, wheel, token).status_code == 200
            index.cli("index", "create", "up", "--mirror", upstream.simple)
            mirror_url = f"{index.url}/up/simple/"
            # Warm: the first install keeps every page and stores every file (commits, which
            # drop what the server keeps of its decisions); the second has them all decided.
            _install(mirror_url, tmp / "warm")
            _install(mirror_url, tmp / "warm2")
            runs: dict[str, list[dict[str, float]]] = {"upstream": [], "mirror": []}
            for r in range(args.repeats):
                order = ["upstream", "mirror"] if r % 2 == 0 else ["mirror", "upstream"]
                for name in order:
                    if name == "upstream":
                        runs[name].append(timed(upstream, upstream.simple, tmp / "t"))
                    else:
                        runs[name].append(timed(index, mirror_url, tmp / "t"))
        finally:
            index.stop()
            upstream.stop()
    medians = {
        name: {key: statistics.median(x[key] for x in values) for key in values[0]} for name, values in runs.items()
    }
    print(json.dumps({
        "packages": PACKAGES,
        "repeats": args.repeats,
        "median": medians,
        "mirror_over_upstream_wall": medians["mirror"]["wall_s"] / medians["upstream"]["wall_s"],
        "mirror_over_upstream_server_cpu": medians["mirror"]["server_cpu_ms"] / medians["upstream"]["server_cpu_ms"],
        "runs": runs,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
