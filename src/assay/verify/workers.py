"""Where provenance checks run: worker processes when there is enough to do, else a thread.

Verification is CPU-bound Python (about 2 ms per attestation, most of it holding the GIL in
sigstore and cryptography), so threads do not make it faster; processes do. Workers are
forked, so they start in milliseconds with sigstore already imported and the trust root's
verifier already built. Forking a process that runs other threads can deadlock a child on a
lock held at fork time, so processes are used only while this process is single-threaded
(the pool is created, and every worker forked, before the run starts its network threads),
only where ``fork`` is the safe default (not macOS), and only for runs big enough to gain.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor

from assay.attestations.trust import TrustRoot
from assay.verify.checks import ProvenanceCheck
from assay.verify.pins import Matcher

#: Below this many files, forking workers costs more than it saves.
MIN_FILES_FOR_PROCESSES = 32

_worker_trust: TrustRoot | None = None


def _set_trust(trust: TrustRoot) -> None:
    global _worker_trust
    _worker_trust = trust


def _check_in_worker(body: bytes, filename: str, sha256: str, expected: tuple[Matcher, ...]) -> ProvenanceCheck:
    from assay.verify.provenance import check_provenance  # imported before the fork

    assert _worker_trust is not None, "worker started without a trust root"
    return check_provenance(body, filename=filename, sha256=sha256, expected=expected, trust=_worker_trust)


def _ready() -> None:
    """A no-op task: submitting it makes the pool fork every worker at once."""


def usable_processes(files: int) -> int:
    """How many check processes a run of ``files`` files should fork: one per usable CPU, each
    with at least half of ``MIN_FILES_FOR_PROCESSES`` files, and 1 (check in-process) wherever
    forking is not safe (module docstring)."""
    if files < MIN_FILES_FOR_PROCESSES:
        return 1
    if sys.platform == "darwin" or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if threading.active_count() > 1:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, files // (MIN_FILES_FOR_PROCESSES // 2)))


class CheckPool:
    """Runs ``check_provenance`` for a run; ``processes`` is what ``usable_processes`` allows."""

    def __init__(self, trust: TrustRoot, *, processes: int) -> None:
        # sigstore is imported here, not with this module: a run whose every result is
        # remembered (assay.verify.memo) never creates a pool, and never pays for it.
        from assay.verify import provenance

        self.trust = trust
        self.processes = processes
        self._check = provenance.check_provenance
        _ = trust.verifier  # build it once, before forking, so every worker inherits it
        self._executor: Executor
        if processes > 1:
            self._executor = ProcessPoolExecutor(
                processes,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_set_trust,
                initargs=(trust,),
            )
            self._executor.submit(_ready).result()
        else:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="assay-verify-check")

    def submit(
        self, body: bytes, *, filename: str, sha256: str, expected: tuple[Matcher, ...]
    ) -> Future[ProvenanceCheck]:
        if self.processes > 1:
            return self._executor.submit(_check_in_worker, body, filename, sha256, expected)
        return self._executor.submit(
            self._check,
            body,
            filename=filename,
            sha256=sha256,
            expected=expected,
            trust=self.trust,
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
