"""Issue 10, item 1: what an archive "bomb" upload costs the server, in time and peak memory.

Each case gets a fresh ``assay serve`` (SQLite, one worker; started as the tests start it,
tests/support/server.py), one ordinary upload to warm it up, then the hostile upload through
PyPI's legacy form (tests/support/upload.py). Measured: the upload's wall time as the client sees
it, the answer, and the server's peak resident memory (``VmHWM`` in /proc/<pid>/status) before
and after. The cases:

* ``wheel-53mb-plain``: for comparison, an ordinary wheel of the same size (53 MB of random
  bytes in one member), accepted: what receiving, hashing and storing 53 MB costs;
* ``wheel-1m``: a 53 MB wheel with 1,000,000 empty central-directory entries whose zip64 end
  record declares them (tests/support/dists.wheel_with_many_entries);
* ``wheel-1m-lying``: the same entries, the end record declaring only 200,000 (the limit);
* ``sdist-250k``: a 1.8 MB .tar.gz with 250,000 empty members before its PKG-INFO
  (tests/support/dists.sdist_with_many_members);
* ``sdist-pax-1g``: a 34 MB .tar.gz whose first header is a pax extended header claiming
  1 GiB, followed by 1 GiB of zeros (64 MiB gzip members repeated) and, never reached, 32 MiB of
  random bytes that raise the decompression budget (32 times the upload) to its 1 GiB cap.

Run: ``.venv/bin/python bench/upload/zipbomb.py [case ...]`` from the repository root.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.dists import (  # noqa: E402
    make_wheel,
    sdist_with_many_members,
    wheel_with_many_entries,
)
from tests.support.server import AssayServer  # noqa: E402
from tests.support.upload import upload  # noqa: E402


def pax_bomb(directory: Path) -> Path:
    import gzip
    import tarfile

    chunk = 64 << 20
    header = tarfile.TarInfo("bomb-1.0/pax")
    header.type = tarfile.XHDTYPE
    header.size = 16 * chunk
    zeros = gzip.compress(b"\0" * chunk, compresslevel=9)
    path = directory / "bomb-1.0.tar.gz"
    path.write_bytes(
        gzip.compress(header.tobuf(format=tarfile.USTAR_FORMAT)) + zeros * 16 + gzip.compress(os.urandom(32 << 20))
    )
    return path


CASES: dict[str, Callable[[Path], Path]] = {
    "wheel-53mb-plain": lambda d: make_wheel(d, "plain", "1.0", extra_files={"plain/blob": os.urandom(53_000_000)}),
    "wheel-1m": lambda d: wheel_with_many_entries(d, "bomb", "1.0", 1_000_000),
    "wheel-1m-lying": lambda d: wheel_with_many_entries(d, "bomb", "1.0", 1_000_000, declared=200_000),
    "sdist-250k": lambda d: sdist_with_many_members(d, "bomb", "1.0", 250_000),
    "sdist-pax-1g": pax_bomb,
}


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def run(case: str, make: Callable[[Path], Path]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bomb = make(work)
        size = bomb.stat().st_size
        server = AssayServer(work / "data", args=["--max-upload-size", str(100 * 1024 * 1024)]).start()
        try:
            assert server.proc is not None
            token = server.quick_token("bench")
            with server.client() as client:
                warm = upload(client, make_wheel(work, "warm", "1.0"), token)
                assert warm.status_code == 200, warm.text
                before = peak_rss_kib(server.proc.pid)
                started = time.monotonic()
                r = upload(client, bomb, token)
                elapsed = time.monotonic() - started
                after = peak_rss_kib(server.proc.pid)
        finally:
            server.stop()
    return (
        f"| {case} | {size / 1e6:.1f} MB | {r.status_code} {r.text.strip()[:90]} | {elapsed:.2f} s "
        f"| {before / 1024:.0f} MiB | {after / 1024:.0f} MiB |"
    )


def main(argv: list[str]) -> int:
    chosen = argv or list(CASES)
    print("| case | upload | answer | time | server peak RSS before | after |")
    print("|---|---|---|---|---|---|")
    for case in chosen:
        print(run(case, CASES[case]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
