"""What the ``verify``, ``install`` and ``pins`` commands do, without the command line.

``assay.cli.verify`` parses options and prints; everything else is here, so the commands stay
thin and ``assay --help`` (or ``assay serve``) never imports sigstore, httpx or rich.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.pylock import Pylock
from rich.console import Console

from assay.attestations.trust import TrustRoot, TrustRootError, read_trust_root
from assay.verify import install, interpreters, locks, report
from assay.verify.cache import default_cache_dir
from assay.verify.errors import InputError
from assay.verify.files import LockedFile
from assay.verify.indexes import DefaultIndex
from assay.verify.pins import PinSet, lock_pins
from assay.verify.requirements import load_requirements
from assay.verify.runner import Outcome, Settings, run

_DIST_SUFFIXES = (".whl", ".tar.gz", ".zip")


@dataclass(frozen=True)
class Inputs:
    files: list[LockedFile]
    #: The lock file read, if the input was one (for --write-lock-identities).
    lock_path: Path | None = None
    lock: Pylock | None = None

    @property
    def source(self) -> str:
        return str(self.lock_path) if self.lock_path else "the lock"


def _with_indexes(files: list[LockedFile], default: DefaultIndex) -> list[LockedFile]:
    return [
        f
        if f.index is not None or f.not_on_index
        else replace(f, index=default.get(needed_by=f"package {f.name} ({f.label})"))
        for f in files
    ]


def read_inputs(
    inputs: Sequence[Path],
    requirements: Path | None,
    index_url: str | None,
    pip_args: list[str] | None,
) -> Inputs:
    """Exactly one kind of input: ``-- <pip lock args>``, ``-r FILE``, one lock, or dists."""
    kinds = sum([pip_args is not None, requirements is not None, bool(inputs)])
    if kinds > 1:
        raise InputError("give one kind of input: a lock, distribution files, -r FILE, or -- <pip lock args>")
    default = DefaultIndex(index_url, pip_args=pip_args or (), python=interpreters.for_pip_config)
    if pip_args is not None:
        lock = locks.run_pip_lock(pip_args)
        return Inputs(_with_indexes(locks.lock_files(lock, source="pip lock"), default), lock=lock)
    if requirements is not None:
        return Inputs(_with_indexes(load_requirements(requirements).files, default))
    if not inputs:
        if not Path("pylock.toml").is_file():
            raise InputError(
                "nothing to verify: pass a pylock.toml, distribution files, -r requirements.txt "
                "or -- <pip lock args> (there is no pylock.toml in the current directory)"
            )
        inputs = [Path("pylock.toml")]
    tomls = [p for p in inputs if p.suffix == ".toml"]
    if tomls:
        if len(inputs) != 1:
            raise InputError("verify one lock at a time, without other inputs")
        lock = locks.load_pylock(tomls[0])
        files = locks.lock_files(lock, source=str(tomls[0]))
        return Inputs(_with_indexes(files, default), lock_path=tomls[0], lock=lock)
    others = [p for p in inputs if not p.name.endswith(_DIST_SUFFIXES)]
    if others:
        raise InputError(f"{others[0]} is neither a lock (.toml) nor a wheel or sdist")
    return Inputs(_with_indexes(locks.explicit_files(inputs), default))


def trust_root(*, staging: bool, path: Path | None) -> TrustRoot:
    if staging and path is not None:
        raise InputError("--staging and --trust-root are exclusive")
    try:
        if path is not None:
            return read_trust_root(path)
        return read_trust_root("staging" if staging else "production")
    except TrustRootError as exc:
        raise InputError(str(exc)) from None


def settings(
    *,
    staging: bool,
    trust_root_path: Path | None,
    cache_dir: Path | None,
    offline: bool,
    jobs: int,
    timeout: float,
    retries: int,
    tofu: bool,
    strict: bool,
    recheck: bool = False,
    require_witnesses: int = 0,
    witness_keys: Sequence[str] = (),
) -> Settings:
    return Settings(
        trust=trust_root(staging=staging, path=trust_root_path),
        cache_dir=cache_dir or default_cache_dir(),
        offline=offline,
        jobs=jobs,
        timeout=timeout,
        retries=retries,
        tofu=tofu,
        strict=strict,
        recheck=recheck,
        require_witnesses=require_witnesses,
        witness_keys=tuple(witness_keys),
    )


def load_pins(path: Path, inputs: Inputs) -> PinSet:
    from_lock = lock_pins(inputs.lock, source=inputs.source) if inputs.lock is not None else {}
    return PinSet.load(path, lock_pins=from_lock)


def verify(inputs: Inputs, pins: PinSet, settings: Settings, *, verbose: bool, progress: bool = True) -> Outcome:
    """Run the verification, with a progress bar on a terminal; warnings go to stderr."""
    console = Console(stderr=True)
    started = time.monotonic()
    with report.progress_bar(len(inputs.files) if progress else 0, console) as advance:
        outcome = run(inputs.files, pins, settings, on_progress=advance)
    for warning in outcome.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if verbose:
        elapsed = time.monotonic() - started
        print(f"assay verify: {outcome.stats_line()}; {elapsed:.2f}s", file=sys.stderr)
    return outcome


def record_new_pins(outcome: Outcome, pins: PinSet, *, tofu: bool) -> str | None:
    """--tofu: write the pins recorded in this run (only packages that had none), and say what
    was pinned, or that nothing was (so a run that was expected to pin is not mistaken for one
    that did)."""
    logs = ""
    if outcome.new_log_keys:
        for url, key in outcome.new_log_keys.items():
            pins.file.log_keys.setdefault(url, key)  # never re-pins a log key
        if not outcome.new_pins:
            pins.file.save()
        logs = f"recorded the log key of {', '.join(sorted(outcome.new_log_keys))} in {pins.file.path}"
        if not outcome.new_pins:
            return logs
        logs = "; " + logs
    if not outcome.new_pins:
        if not tofu:
            return None
        unpinned = sorted({r.file.name for r in outcome.results if pins.get(r.file.name) is None})
        if not unpinned:
            return "--tofu pinned nothing: every package already has a pin"
        return (
            "--tofu pinned nothing: the packages without a pin have no sound attestation to "
            f"pin ({', '.join(unpinned)})"
        )
    for name, identity in sorted(outcome.new_pins.items()):
        pins.file.set(name, identity)
    pins.file.save()
    names = ", ".join(sorted(outcome.new_pins))
    return f"recorded new pins in {pins.file.path} for: {names} (review and commit them){logs}"


def install_inputs(
    lock_path: Path, index_url: str | None, target: interpreters.Interpreter
) -> tuple[install.Plan, Inputs]:
    """What ``assay install`` verifies (every file of the selected packages) and installs.
    Files the lock names no index for are looked up on ``index_url``, else the index the
    target's pip is configured with."""
    lock = locks.load_pylock(lock_path)
    plan = install.plan(lock, source=str(lock_path))
    files = _with_indexes(plan.to_verify, DefaultIndex(index_url, python=lambda: target.python))
    return plan, Inputs(files, lock_path=lock_path, lock=lock)


def install_files(
    plan: install.Plan,
    lock_path: Path,
    settings: Settings,
    installer_args: Sequence[str],
    target: interpreters.Interpreter,
) -> int:
    """Fetch the chosen files (each checked against the lock) into a private directory and
    run pip on exactly them. Raises ``install.InstallError``; returns pip's exit status."""
    from assay.verify.fetch import Http

    http = None
    if not settings.offline:
        # Distributions are bigger than provenance: at least a minute per attempt.
        http = Http(timeout=max(settings.timeout, 60.0), retries=settings.retries, connections=settings.jobs)
    try:
        with tempfile.TemporaryDirectory(prefix="assay-install-") as tmp:
            # mkdtemp: mode 0700, no one else can swap a file in. The files get a directory
            # of their own: it is pip's --find-links, where nothing else may be found.
            directory = Path(tmp) / "verified"
            directory.mkdir(mode=0o700)
            paths = install.fetch_files(
                plan.to_install,
                directory,
                http,
                lock_dir=lock_path.resolve().parent,
                jobs=settings.jobs,
            )
            requirements = Path(tmp) / "verified-requirements.txt"
            requirements.write_text(install.requirements_for(plan.to_install, paths))
            return install.pip_install(target.python, directory, requirements, installer_args)
    finally:
        if http is not None:
            http.close()
