"""One verification run: look up every file's provenance, check it, judge it against its pin.

Network work (index pages, provenance) runs on ``jobs`` threads sharing one HTTP client; each
provenance body goes to the check pool as soon as it arrives, so fetching and verifying
overlap. A check whose inputs an earlier run already checked is not run again: its result
comes from the memo (``assay.verify.memo`` says when that is safe). Verdicts are decided at the
end, per package, in input order, so ``--tofu`` records a package's pin from its first
attested file and judges the package's other files against it.
"""

from __future__ import annotations

import queue
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin

from packaging.utils import NormalizedName

from assay.attestations.trust import TrustRoot, TrustRootError
from assay.log import note
from assay.publishers import Identity
from assay.verify import logcheck
from assay.verify import rebuilds as rebuild_pins
from assay.verify.approvals import ApprovalChecker
from assay.verify.cache import DiskCache, Entry
from assay.verify.checks import ProvenanceCheck
from assay.verify.errors import FetchError, InputError
from assay.verify.files import LockedFile
from assay.verify.memo import CheckMemo, MemoUnavailable, default_key_path, load_key
from assay.verify.pins import Matcher, Pin, PinSet
from assay.verify.retrieve import Found, Retriever, Unavailable
from assay.verify.simple import ProjectPage
from assay.verify.verdicts import (
    FAILURES,
    Evidence,
    FileResult,
    Verdict,
    attesting_identity,
    is_failure,
    judge,
)
from assay.verify.workers import CheckPool, usable_processes

if TYPE_CHECKING:
    from assay.verify.fetch import Http

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    trust: TrustRoot
    cache_dir: Path
    offline: bool = False
    #: Concurrent HTTP requests (and connections).
    jobs: int = 8
    #: Total seconds per HTTP request attempt.
    timeout: float = 20.0
    retries: int = 3
    tofu: bool = False
    strict: bool = False
    #: Check everything again, ignoring (and refreshing) the memo of earlier checks.
    recheck: bool = False
    #: Where the largest log checkpoint seen per origin is kept (None: the user's state dir).
    log_state_dir: Path | None = None
    #: How many valid cosignatures by pinned witnesses each checked checkpoint needs (0: none).
    require_witnesses: int = 0
    #: Witness verifier keys (cosignature/v1) given on the command line, for every index.
    witness_keys: tuple[str, ...] = ()


@dataclass
class Outcome:
    results: list[FileResult]
    strict: bool
    #: Pins ``--tofu`` recorded in this run (not yet written).
    new_pins: dict[NormalizedName, Identity] = field(default_factory=dict)
    #: Log keys ``--tofu`` recorded in this run, per index URL (not yet written).
    new_log_keys: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: How the run went: check processes, provenance fetched/revalidated/cached, attestations.
    stats: Counter[str] = field(default_factory=Counter)

    #: Whether results of earlier checks were used, and if not why ("on", "off: ...").
    memo: str = "off"
    #: Issue 14, item 4: per result position of a rebuild-pinned wheel, the pinned rebuilders
    #: whose signed reports matched it (checked here).
    rebuilds: dict[int, list[str]] = field(default_factory=dict)

    def stats_line(self) -> str:
        s = self.stats
        return (
            f"{len(self.results)} files; provenance: {s['fetched']} fetched, "
            f"{s['revalidated']} revalidated (304), {s['cached']} from the cache (offline); "
            f"{s['attestations']} attestations; {s['checked']} files checked in "
            f"{s['processes'] if s['processes'] > 1 else 'this'} "
            f"{'processes' if s['processes'] > 1 else 'process'}, {s['remembered']} "
            f"remembered from earlier runs (memo {self.memo})"
        )

    @property
    def failed(self) -> bool:
        return any(is_failure(r.verdict, strict=self.strict) for r in self.results)

    def summary(self) -> dict[str, int]:
        counts = {verdict.value: 0 for verdict in Verdict}
        for result in self.results:
            counts[result.verdict.value] += 1
        return counts

    def passing_identities(self) -> dict[NormalizedName, list[dict[str, Any]]]:
        """Per package whose every file is ``verified`` or ``pinned``: the identity it was
        verified against, as a PEP 740 publisher block (for PEP 751 attestation-identities)."""
        by_package: dict[NormalizedName, list[FileResult]] = defaultdict(list)
        for result in self.results:
            by_package[result.file.name].append(result)
        identities: dict[NormalizedName, list[dict[str, Any]]] = {}
        for name, results in by_package.items():
            if all(r.verdict in (Verdict.VERIFIED, Verdict.PINNED) for r in results):
                blocks = {tuple(sorted(fields.items())) for r in results if (fields := r.identity_fields()) is not None}
                identities[name] = [dict(b) for b in sorted(blocks)]
        return identities


@dataclass
class _Slot:
    """One input file's progress through the run."""

    file: LockedFile
    pin: Pin | None
    evidence: Evidence | None = None


def _project_key(file: LockedFile) -> tuple[str, NormalizedName]:
    assert file.index is not None
    return (file.index, file.name)


class _Inline(Executor):
    """Runs each task as it is submitted, on the calling thread."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _expected(slot: _Slot) -> tuple[Matcher, ...]:
    """The identities a check compares the certificates with: the pin's, if it had one."""
    return slot.pin.matchers if slot.pin is not None else ()


def _open_memo(cache: DiskCache, settings: Settings, warnings: list[str]) -> tuple[CheckMemo | None, str]:
    if settings.recheck:
        return None, "off: --recheck"
    try:
        key = load_key(default_key_path())
    except MemoUnavailable as exc:
        if exc.insecure:
            warnings.append(f"results of earlier checks are not used: {exc}")
        return None, f"off: {exc}"
    return CheckMemo(cache, key, settings.trust), "on"


def _plan(
    slots: list[_Slot], cache: DiskCache, memo: CheckMemo | None, preread: dict[str, Entry], *, online: bool
) -> tuple[int, int]:
    """From the cache alone, before any request: how many files will need a check, and how
    many have one remembered (if the index serves the same provenance again). The entries
    read go to ``preread``, for the lookups not to read them again."""
    to_check = remembered = 0
    for slot in slots:
        file = slot.file
        if file.not_on_index or file.sha256 is None:
            continue
        entry = cache.provenance(file.sha256)
        if entry is not None:
            preread[file.sha256] = entry
        if entry is None:
            to_check += online  # fetched, then checked (offline: a cache miss, nothing to check)
        elif entry.body is None:
            continue  # no provenance when last looked up
        elif (
            memo is not None
            and file.filename is not None
            and memo.get(entry.body, filename=file.filename, sha256=file.sha256, expected=_expected(slot)) is not None
        ):
            remembered += 1
        else:
            to_check += 1
    return to_check, remembered


class _Checks:
    """Where checks run: the pool forked up front when checks are expected (before any thread
    starts: ``assay.verify.workers``), else one created in-process by the first check."""

    def __init__(self, trust: TrustRoot, expected_checks: int) -> None:
        self.trust = trust
        self.pool = CheckPool(trust, processes=usable_processes(expected_checks)) if expected_checks else None

    def submit(
        self, body: bytes, *, filename: str, sha256: str, expected: tuple[Matcher, ...]
    ) -> Future[ProvenanceCheck]:
        if self.pool is None:
            self.pool = CheckPool(self.trust, processes=1)
        return self.pool.submit(body, filename=filename, sha256=sha256, expected=expected)

    @property
    def processes(self) -> int:
        return self.pool.processes if self.pool is not None else 1

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def run(
    files: Sequence[LockedFile],
    pins: PinSet,
    settings: Settings,
    *,
    on_progress: Callable[[LockedFile], None] | None = None,
) -> Outcome:
    slots = [_Slot(f, pins.get(f.name)) for f in files]
    cache = DiskCache(settings.cache_dir)
    warnings: list[str] = []
    memo, memo_state = _open_memo(cache, settings, warnings)
    preread: dict[str, Entry] = {}
    expected_checks, remembered = _plan(slots, cache, memo, preread, online=not settings.offline)
    if expected_checks or not remembered:
        # sigstore parses the root only here: remembered results were obtained under exactly
        # these bytes (their digest is part of each result's name), which proves them usable.
        try:
            _ = settings.trust.trusted_root
        except TrustRootError as exc:
            raise InputError(str(exc)) from None
    # The check pool first: its workers fork while this process has no other thread.
    checks = _Checks(settings.trust, expected_checks)
    stats: Counter[str] = Counter()
    http = None
    if not settings.offline:
        from assay.verify.fetch import Http  # httpx: not needed offline

        http = Http(timeout=settings.timeout, retries=settings.retries, connections=settings.jobs)
    retriever = Retriever(cache, http, preread=preread)
    pages: dict[tuple[str, NormalizedName], ProjectPage] = {}
    # Receipts fetched while provenance is (issue 13): for files of an index whose log key is
    # pinned (or is being pinned, --tofu), as soon as their project's page names the receipt.
    receipts: dict[int, bytes | None] = {}

    def fetch_receipt(file: LockedFile, page: ProjectPage) -> bytes | None:
        return logcheck.receipt_for(file, page, cache, http)[0]

    def wants_receipt(file: LockedFile) -> bool:
        return file.index is not None and (settings.tofu or file.index in pins.file.log_keys)

    try:
        _gather(slots, retriever, checks, memo, settings, on_progress, stats, pages,
                receipts=receipts, fetch_receipt=fetch_receipt if http is not None else None,
                wants_receipt=wants_receipt)
        outcome = _decide(slots, settings)
        _check_logs(outcome, slots, pages, pins, settings, cache, http, prefetched=receipts)
        _check_rebuilds(outcome, slots, pins, settings, http)
        _check_approvals(outcome, slots, pins, http)
    finally:
        checks.close()
        if http is not None:
            http.close()
    stats["processes"] = checks.processes
    stats["attestations"] = sum(
        len(bundle.attestations)
        for slot in slots
        if isinstance(slot.evidence, ProvenanceCheck)
        for bundle in slot.evidence.bundles
    )
    outcome.stats = stats
    outcome.memo = memo_state
    outcome.warnings.extend(warnings)
    if cache.write_error:
        outcome.warnings.append(cache.write_error)
    return outcome


def _gather(
    slots: list[_Slot],
    retriever: Retriever,
    checks: _Checks,
    memo: CheckMemo | None,
    settings: Settings,
    on_progress: Callable[[LockedFile], None] | None,
    stats: Counter[str],
    pages: dict[tuple[str, NormalizedName], ProjectPage],
    *,
    receipts: dict[int, bytes | None] | None = None,
    fetch_receipt: Callable[[LockedFile, ProjectPage], bytes | None] | None = None,
    wants_receipt: Callable[[LockedFile], bool] | None = None,
) -> None:
    def done(slot: _Slot, evidence: Evidence) -> None:
        slot.evidence = evidence
        if on_progress is not None:
            on_progress(slot.file)

    online = not settings.offline
    # Which files need their project's page: online, every file from an index (it names the
    # provenance URL); offline, only requirement hashes not yet matched to a filename.
    needs_page: dict[tuple[str, NormalizedName], list[_Slot]] = defaultdict(list)
    direct: list[_Slot] = []
    for slot in slots:
        if slot.file.not_on_index is None and (online or slot.file.filename is None):
            needs_page[_project_key(slot.file)].append(slot)
        else:
            direct.append(slot)

    # Every future reports to one queue when done, so the loop below handles each completion
    # once (concurrent.futures.wait would rescan every pending future on each call).
    events: queue.SimpleQueue[tuple[str, Any, Future[Any]]] = queue.SimpleQueue()
    outstanding = 0

    def track(future: Future[Any], kind: str, subject: Any) -> None:
        nonlocal outstanding
        outstanding += 1
        future.add_done_callback(lambda f: events.put((kind, subject, f)))

    # Offline, a lookup is a read of a small local file: threads would only contend for the GIL.
    io: Executor = (
        ThreadPoolExecutor(max(1, settings.jobs), thread_name_prefix="assay-verify-fetch") if online else _Inline()
    )
    with io:

        def lookup(slot: _Slot, page: ProjectPage | Unavailable | None) -> None:
            track(io.submit(retriever.provenance, slot.file, page), "provenance", slot)

        for slot in direct:
            lookup(slot, None)
        for key, waiting in needs_page.items():
            track(io.submit(retriever.page, *key), "page", waiting)

        while outstanding:
            kind, subject, future = events.get()
            outstanding -= 1
            if kind == "page":
                page: ProjectPage | Unavailable = future.result()
                if isinstance(page, ProjectPage):
                    pages[subject[0].file.index, subject[0].file.name] = page
                for slot in subject:
                    lookup(slot, page)
                    if (
                        fetch_receipt is not None and wants_receipt is not None and isinstance(page, ProjectPage)
                        and slot.file.filename and slot.file.sha256 and wants_receipt(slot.file)
                    ):
                        track(io.submit(fetch_receipt, slot.file, page), "receipt", slot)
            elif kind == "receipt":
                if receipts is not None:
                    receipts[id(subject)] = future.result()
            elif kind == "provenance":
                slot = subject
                resolved, retrieval = future.result()
                slot.file = resolved
                if not isinstance(retrieval, Found):
                    done(slot, retrieval)
                    continue
                stats[retrieval.how] += 1
                assert resolved.filename is not None
                assert resolved.sha256 is not None
                inputs = {"filename": resolved.filename, "sha256": resolved.sha256, "expected": _expected(slot)}
                if memo is not None and (known := memo.get(retrieval.body, **inputs)) is not None:
                    stats["remembered"] += 1
                    done(slot, known)
                    continue
                track(checks.submit(retrieval.body, **inputs), "check", (slot, retrieval.body, inputs))
            else:
                slot, body, inputs = subject
                check: ProvenanceCheck = future.result()
                stats["checked"] += 1
                if memo is not None:
                    memo.put(body, check=check, **inputs)
                done(slot, check)


def _decide(slots: list[_Slot], settings: Settings) -> Outcome:
    outcome = Outcome(results=[], strict=settings.strict)
    by_package: dict[NormalizedName, list[int]] = defaultdict(list)
    for position, slot in enumerate(slots):
        by_package[slot.file.name].append(position)
    results: dict[int, FileResult] = {}
    for name, positions in by_package.items():
        pin = slots[positions[0]].pin
        proposed: Identity | None = None
        if pin is None and settings.tofu:
            # Trust on first use: the first file whose certificates confirm its publisher
            # block proposes the pin; every file of the package is then judged against it.
            for position in positions:
                evidence = slots[position].evidence
                if isinstance(evidence, ProvenanceCheck):
                    proposed = attesting_identity(evidence)
                    if proposed is not None:
                        pin = Pin((proposed,), source="recorded now by --tofu")
                        break
        for position in positions:
            slot = slots[position]
            assert slot.evidence is not None, "every file gets evidence before judging"
            expected = slot.pin.matchers if slot.pin is not None else ()
            results[position] = judge(slot.file, slot.evidence, pin, expected=expected, fresh_pin=proposed is not None)
        if proposed is not None and any(results[p].verdict is Verdict.PINNED for p in positions):
            outcome.new_pins[name] = proposed
    outcome.results = [results[p] for p in range(len(slots))]
    return outcome


def _check_logs(
    outcome: Outcome,
    slots: list[_Slot],
    pages: dict[tuple[str, NormalizedName], ProjectPage],
    pins: PinSet,
    settings: Settings,
    cache: DiskCache,
    http: Http | None,
    prefetched: dict[int, bytes | None] | None = None,
) -> None:
    """The index's transparency log (``assay.verify.logcheck``): a log failure replaces a
    verdict that was not already a failure."""
    state = logcheck.CheckpointState(settings.log_state_dir or logcheck.default_state_dir())
    by_index: dict[str, list[int]] = defaultdict(list)
    for position, slot in enumerate(slots):
        f = slot.file
        if f.index is not None and f.not_on_index is None and f.sha256 is not None and f.filename is not None:
            by_index[f.index].append(position)
    required = settings.require_witnesses
    for index, positions in by_index.items():
        problems: dict[int, logcheck.Problem] = {}

        def unchecked(why: str, positions: list[int] = positions) -> None:
            """The log is not checked: a warning, or with --require-witnesses a failure."""
            if required:
                for position in positions:
                    _fail(outcome, position, logcheck.Problem(
                        Verdict.LOG_UNWITNESSED, f"--require-witnesses {required}: {why}"
                    ))
            else:
                outcome.warnings.append(why)

        offered = logcheck.offers_log([p for (i, _), p in pages.items() if i == index])
        key = pins.file.log_keys.get(index)
        if key is None and not offered:
            if required:
                unchecked(f"{index} has no transparency log (no receipts, no pinned log key)")
            continue  # an index without a log, and no pin expecting one
        if key is None:
            if not settings.tofu or http is None:
                unchecked(
                    f"{index} offers a transparency log whose key is not pinned: its receipts are not "
                    "checked (run with --tofu to pin the key)"
                )
                continue
            try:
                got = http.get(urljoin(logcheck.log_base(index), "log/key"), accept="text/plain", limit=4096)
                key = got.body.decode("ascii").strip() if got.status == 200 else None
            except (FetchError, UnicodeDecodeError):
                key = None
            if key is None:
                unchecked(f"{index} offers a transparency log but no key at log/key")
                continue
            outcome.new_log_keys[index] = key
        try:
            verifier = note.Ed25519Verifier.from_verifier_key(key)
        except note.NoteError as exc:
            raise InputError(f"the log key pinned for {index} is not a verifier key: {exc}") from None
        witnesses = logcheck.witness_verifiers(
            [*pins.file.log_witnesses.get(index, []), *settings.witness_keys], where=f"the witnesses of {index}"
        )
        # C2SP tlog-checkpoint: the log's key name is its origin, so the pinned key says which
        # log (origin) the checkpoints must come from.
        log = logcheck.IndexLog(index, key, verifier.name, verifier)

        def receipt(position: int) -> bytes | None:
            if prefetched is not None and id(slots[position]) in prefetched:
                return prefetched[id(slots[position])]
            file = slots[position].file
            return logcheck.receipt_for(file, pages.get(_project_key(file)), cache, http)[0]

        # Those not fetched during _gather: one request per file, on `jobs` threads (serially,
        # 500 receipts cost 500 round trips).
        missing = [p for p in positions if prefetched is None or id(slots[p]) not in prefetched]
        if http is not None and len(missing) > 1:
            with ThreadPoolExecutor(max_workers=settings.jobs, thread_name_prefix="assay-log") as pool:
                receipts = dict(zip(positions, pool.map(receipt, positions), strict=True))
        else:
            receipts = {position: receipt(position) for position in positions}
        for position in positions:
            slot = slots[position]
            data = receipts[position]
            if data is None:
                problems[position] = logcheck.Problem(
                    Verdict.LOG_MISSING, f"the log of {index} has no receipt for {slot.file.filename}"
                )
                continue
            checkpoint, problem = logcheck.check_receipt(data, slot.file, log, position)
            if problem is not None:
                problems[position] = problem
            elif checkpoint is not None and checkpoint not in log.seen:
                log.seen.append(checkpoint)  # each distinct one is proven a prefix once, not per file
        if note_ := logcheck.check_consistency(log, state, http):
            outcome.warnings.append(note_)
        unwitnessed = logcheck.check_witnesses(log, witnesses, required) if required else {}
        for position in positions:
            if log.fork is not None and position not in problems:
                problems[position] = logcheck.Problem(Verdict.LOG_FORK, log.fork)
            if position not in problems and (why := unwitnessed.get(position, unwitnessed.get(-1))):
                problems[position] = logcheck.Problem(Verdict.LOG_UNWITNESSED, why)
            if (problem := problems.get(position)) is not None:
                _fail(outcome, position, problem)


def _check_approvals(outcome: Outcome, slots: list[_Slot], pins: PinSet, http: Http | None) -> None:
    """``approved = true`` pins (``assay.verify.approvals``): an approved file's reason says by
    whom and when; a file without a verified approval fails as ``unapproved``."""
    if not pins.file.approved:
        return
    checker = ApprovalChecker(http, {**pins.file.log_keys, **outcome.new_log_keys})
    for position, slot in enumerate(slots):
        if slot.file.name not in pins.file.approved:
            continue
        checked = checker.check(slot.file)
        result = outcome.results[position]
        if checked.problem is not None:
            _fail(outcome, position, logcheck.Problem(Verdict.UNAPPROVED, checked.problem))
        elif checked.approval is not None and result.verdict not in FAILURES:
            outcome.results[position] = FileResult(
                result.file,
                result.verdict,
                f"{result.reason}; {checked.approval.summary()} (statement signed by the index's log key)",
                result.identity,
            )


def _fail(outcome: Outcome, position: int, problem: logcheck.Problem) -> None:
    result = outcome.results[position]
    if result.verdict not in FAILURES:
        outcome.results[position] = FileResult(result.file, problem.verdict, problem.reason, result.identity)


def _check_rebuilds(outcome: Outcome, slots: list[_Slot], pins: PinSet, settings: Settings, http: Http | None) -> None:
    """Rebuild pins (``assay.verify.rebuilds``): each pinned wheel's reports, checked here; too
    few replaces a verdict that was not already a failure, enough is said in the reason."""
    for position, slot in enumerate(slots):
        f = slot.file
        pin = pins.file.rebuilds.get(f.name)
        if pin is None or f.filename is None or not f.filename.endswith(".whl") or f.sha256 is None:
            continue
        url = rebuild_pins.reports_url(f)
        problem = None
        got = None
        if http is None or url is None:
            problem = "its rebuild reports cannot be fetched (offline, or no index URL)"
        else:
            try:
                answer = rebuild_pins.fetch(http, url)
                got = None if answer is None else rebuild_pins.judge(answer, f, pin, settings.trust)
            except (FetchError, ValueError) as exc:
                problem = f"its rebuild reports could not be read: {exc}"
        outcome.rebuilds[position] = list(got.reproduced_by) if got is not None else []
        n = len(got.reproduced_by) if got is not None else 0
        if problem is None and n < pin.required:
            problem = f"reproduced by {n} of the {pin.required} required ({pin.summary()})"
            if got is not None and got.mismatches:
                problem += "; mismatch reported by " + "; ".join(got.mismatches)
            if got is not None and got.invalid:
                problem += f"; {len(got.invalid)} report(s) did not verify: " + "; ".join(got.invalid)
        result = outcome.results[position]
        if problem is not None:
            _fail(outcome, position, logcheck.Problem(Verdict.NOT_REPRODUCED, f"rebuild pin: {problem}"))
        elif got is not None:
            reason = f"{result.reason}; reproduced by {', '.join(got.reproduced_by)}"
            outcome.results[position] = FileResult(result.file, result.verdict, reason, result.identity)
