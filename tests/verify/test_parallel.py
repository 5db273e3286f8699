"""Checks in worker processes give the same verdicts as checks in this process.

The CLI forks check workers only when it is single-threaded and has enough files; inside the
test process (where the index's server thread runs) it checks on one thread, so the parallel
path is exercised through a real ``python -m assay verify`` subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from assay.verify.workers import MIN_FILES_FOR_PROCESSES
from tests.support.server import client_environ
from tests.verify.conftest import World, github


def test_worker_processes_agree_with_the_serial_path(world: World) -> None:
    names = [world.name("many") for _ in range(MIN_FILES_FOR_PROCESSES // 2 + 2)]
    groups = [world.publish(n, signer=github("acme/many")) for n in names]
    changed = groups[0][0]
    world.index.set_provenance(changed.filename, world.attest(changed.filename, changed.sha256, *github("evil/many")))
    unattested = groups[1][1]
    world.index.set_provenance(unattested.filename, None)
    world.pin(**{n: {"kind": "GitHub", "repository": "acme/many", "workflow": "release.yml"} for n in names})
    lock = world.lock(*groups)

    serial = world.verify(str(lock))
    assert serial.verdicts[changed.filename] == "identity-changed"
    assert serial.verdicts[unattested.filename] == "attestation-lost"

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "assay",
            "verify",
            "-v",
            "--format",
            "json",
            "--pins",
            str(world.pins_path),
            "--cache-dir",
            str(world.tmp / "other-cache"),
            "--trust-root",
            str(world.authority.trusted_root_path),
            str(lock),
        ],
        capture_output=True,
        text=True,
        env=client_environ({"XDG_STATE_HOME": str(world.tmp / "xdg-state")}),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    parallel = {f["filename"]: f["verdict"] for f in json.loads(proc.stdout)["files"]}
    assert parallel == serial.verdicts
    assert len(parallel) >= MIN_FILES_FOR_PROCESSES
    if sys.platform == "linux" and (cpus := len(os.sched_getaffinity(0))) > 1:
        # Forked workers are a Linux (fork-safe) feature; elsewhere checks run in-process.
        assert f"in {cpus} processes" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
