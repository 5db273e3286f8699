"""Which Python environment ``assay install`` installs into, and whose pip configuration counts.

Not assay's own: assay is often installed once (pipx, a tools venv) and used for many projects,
so installing with ``sys.executable`` would put a project's packages where the project never
sees them. The environment is, first match wins:

1. ``--python PATH`` (an interpreter, or an environment's directory);
2. the active virtual environment, ``$VIRTUAL_ENV`` (what ``activate`` sets, and what pip's
   own ``--require-virtualenv`` looks at);
3. ``python3``, then ``python``, on ``PATH``: the interpreter the user's ``pip`` would run.

That interpreter's own pip (``<python> -m pip``) does the installing, so its configuration
(including a per-environment ``<prefix>/pip.conf``) and its protections (PEP 668's
externally-managed environments) apply as they would to ``pip install``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from assay.verify.errors import InputError

#: Prints the environment's prefix and whether pip is importable there, without importing pip
#: (which takes a good part of a second).
_PROBE = "import sys, importlib.util; print(sys.prefix); print(importlib.util.find_spec('pip') is not None)"


@dataclass(frozen=True)
class Interpreter:
    python: str
    #: How it was chosen: ``--python``, ``VIRTUAL_ENV`` or ``PATH``.
    origin: str
    #: Its ``sys.prefix``: the environment packages go into.
    prefix: str

    def describe(self) -> str:
        return f"{self.prefix} (from {self.origin}: {self.python})"


def _in_environment(directory: Path) -> Path:
    """The interpreter of a virtual environment directory (the venv layout, PEP 405)."""
    return directory / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def locate(explicit: Path | None, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """(interpreter path, origin), without running it."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        candidate = _in_environment(explicit) if explicit.is_dir() else explicit
        if not candidate.exists():
            raise InputError(f"--python {explicit}: no such interpreter")
        return str(candidate), "--python"
    if venv := env.get("VIRTUAL_ENV", "").strip():
        candidate = _in_environment(Path(venv))
        if not candidate.exists():
            raise InputError(f"VIRTUAL_ENV is {venv}, but there is no {candidate}; pass --python PATH")
        return str(candidate), "VIRTUAL_ENV"
    for name in ("python3", "python"):
        if found := shutil.which(name, path=env.get("PATH")):
            return found, "PATH"
    raise InputError("no Python to install into: no VIRTUAL_ENV, no python3 or python on PATH; pass --python PATH")


def probe(python: str, origin: str) -> Interpreter:
    """Run the interpreter once: its prefix, and that it has pip."""
    try:
        proc = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"cannot run {python} (from {origin}): {exc}") from None
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != 2:
        detail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise InputError(f"{python} (from {origin}) is not a working Python: {detail[0]}")
    prefix, has_pip = lines
    if has_pip != "True":
        raise InputError(
            f"{python} (from {origin}) has no pip to install with; add it with "
            f"`{python} -m ensurepip`, or choose another interpreter with --python PATH"
        )
    return Interpreter(python=python, origin=origin, prefix=prefix)


def target(explicit: Path | None) -> Interpreter:
    """The environment to install into (see the module's docstring)."""
    return probe(*locate(explicit))


def for_pip_config() -> str:
    """The interpreter whose ``pip config`` gives the index when nothing else does (``assay
    verify``, which installs nothing): the active environment's, if it has pip, else assay's."""
    try:
        return target(None).python
    except InputError:
        return sys.executable
