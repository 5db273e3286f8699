"""Helpers shared by bench/publishing and bench/attestations: statistics, CPU accounting from
/proc, machine facts, markdown tables, py-spy (installed on demand) and a reader for its
collapsed stacks."""

from __future__ import annotations

import collections
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = REPO / "bench" / "out"
TOOLS = OUT / "tools"

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), p in [0, 100]."""
    if not values:
        return float("nan")
    data = sorted(values)
    k = (len(data) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ CPU accounting


def _proc_stat(pid: str) -> tuple[str, int, int, float] | None:
    """(comm, pgrp, ppid, cpu seconds) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    # rest[0] is state; ppid=rest[1], pgrp=rest[2], utime=rest[11], stime=rest[12]
    return comm, int(rest[2]), int(rest[1]), (int(rest[11]) + int(rest[12])) / _CLK_TCK


def _machine_busy() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # user..steal; guest is already inside user
    return (total - idle) / _CLK_TCK


@dataclass
class CpuSnapshot:
    wall: float
    machine: float
    server: dict[int, float]
    database: dict[int, float]
    client: float


def cpu_snapshot(server_pgid: int | None) -> CpuSnapshot:
    """CPU used so far by: the machine, each process of the server's process group (``assay
    serve`` and its workers), each PostgreSQL process, and this (client) process."""
    server: dict[int, float] = {}
    database: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(entry)
        if stat is None:
            continue
        comm, pgrp, _ppid, cpu = stat
        if server_pgid is not None and pgrp == server_pgid:
            server[int(entry)] = cpu
        elif comm == "postgres":
            database[int(entry)] = cpu
    t = os.times()
    return CpuSnapshot(time.perf_counter(), _machine_busy(), server, database, t.user + t.system)


def _delta(a: dict[int, float], b: dict[int, float]) -> float:
    # A process that ended during the phase took its CPU time with it (unknown: not counted);
    # one that started during it counts from zero.
    return sum(cpu - a.get(pid, 0.0) for pid, cpu in b.items())


@dataclass
class CpuUse:
    """Average cores used during a phase, by whom."""

    server: float
    database: float
    client: float
    other: float

    @classmethod
    def between(cls, a: CpuSnapshot, b: CpuSnapshot) -> CpuUse:
        wall = max(b.wall - a.wall, 1e-9)
        server = _delta(a.server, b.server) / wall
        database = _delta(a.database, b.database) / wall
        client = (b.client - a.client) / wall
        machine = (b.machine - a.machine) / wall
        # Processes that started and ended inside the phase are invisible to the per-process
        # sums (the machine total sees them): they count as "other".
        other = max(machine - server - database - client, 0.0)
        return cls(server, database, client, other)

    def cells(self, with_db: bool) -> list[str]:
        cells = [f"{self.server:.2f}"]
        if with_db:
            cells.append(f"{self.database:.2f}")
        return [*cells, f"{self.client:.2f}", f"{self.other:.2f}"]


def server_cpu_seconds(a: CpuSnapshot, b: CpuSnapshot) -> float:
    return _delta(a.server, b.server)


# ------------------------------------------------------------------ machine


def machine_facts() -> dict[str, str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores ({model}), {mem_gib:.0f} GiB, {platform.system()} {platform.release()}",
        "python": f"Python {platform.python_version()}",
        "load": f"load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)",
    }


def code_state() -> str:
    """The commit measured, and whether src/ differs from it in the work tree."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "code: not a git checkout"
    return f"code: commit {head}" + (f", {len(dirty)} uncommitted change(s) under src/" if dirty else ", src/ clean")


def package_versions(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in names:
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} (missing)")
    return ", ".join(out)


# ------------------------------------------------------------------ py-spy


def py_spy() -> Path | None:
    """The py-spy binary: on PATH, or installed from the package registry into
    bench/out/tools (once). None if it cannot be had (the caller falls back to cProfile)."""
    found = shutil.which("py-spy")
    if found:
        return Path(found)
    local = TOOLS / "bin" / "py-spy"
    if local.exists():
        return local
    log("installing py-spy into bench/out/tools (pip, from the package registry)")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(TOOLS), "py-spy"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not local.exists():
        log(f"py-spy could not be installed: {result.stderr.strip()[-300:]}")
        return None
    return local


def _strip_line(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame)


def read_collapsed(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append(([_strip_line(f) for f in stack.split(";")], int(count)))
    return stacks


def under(stacks: list[tuple[list[str], int]], root: str) -> list[tuple[list[str], int]]:
    """The part of each stack below the first frame whose function is ``root`` (stacks that do
    not pass through it are dropped)."""
    out = []
    for frames, count in stacks:
        for i, frame in enumerate(frames):
            if frame.startswith(root + " ("):
                out.append((frames[i + 1 :], count))
                break
    return out


def classify(
    stacks: list[tuple[list[str], int]],
    buckets: Sequence[tuple[str, Sequence[str]]],
    default: str,
    *,
    outermost: bool = False,
) -> list[tuple[str, int, float]]:
    """Sum samples into named buckets: a stack goes to the first bucket one of whose patterns
    (regular expressions) matches one of its frames, searched from the innermost frame outwards
    (what kind of work) or, with ``outermost``, from the root inwards (which step).
    Returns (bucket, samples, share) sorted by samples."""
    counts: collections.Counter[str] = collections.Counter()
    compiled = [(name, [re.compile(p) for p in patterns]) for name, patterns in buckets]
    total = 0
    for frames, count in stacks:
        total += count
        chosen = default
        for frame in frames if outermost else reversed(frames):
            hit = next((name for name, pats in compiled if any(p.search(frame) for p in pats)), None)
            if hit is not None:
                chosen = hit
                break
        counts[chosen] += count
    return [(name, n, n / total if total else 0.0) for name, n in counts.most_common()]


def top_frames(stacks: list[tuple[list[str], int]], depth: int, n: int = 12) -> list[tuple[str, float]]:
    """Inclusive share of the frames at ``depth`` below the root."""
    counts: collections.Counter[str] = collections.Counter()
    total = sum(c for _, c in stacks)
    for frames, count in stacks:
        counts[frames[depth] if len(frames) > depth else "(self)"] += count
    return [(k, v / total if total else 0.0) for k, v in counts.most_common(n)]
