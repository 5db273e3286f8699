"""Serve a benchmark directory as a static PEP 740 index (tests/support/static_index.py).

``WORK/dists/*`` are the files; ``WORK/provenance/<filename>.provenance`` their provenance.
Prints ``serving <url>`` once listening; runs until stdin closes (the benchmark's pipe).

Usage: python -m bench.verify.serve_index WORK
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.utils import parse_wheel_filename
from tests.support.static_index import StaticIndex


def main() -> None:
    work = Path(sys.argv[1])
    index = StaticIndex()
    for path in sorted((work / "dists").iterdir()):
        name, version, _build, _tags = parse_wheel_filename(path.name)
        provenance = work / "provenance" / f"{path.name}.provenance"
        index.publish(
            str(name),
            str(version),
            path.name,
            path.read_bytes(),
            provenance.read_bytes() if provenance.exists() else None,
        )
    index.start()
    print(f"serving {index.url}", flush=True)
    try:
        sys.stdin.read()
    finally:
        index.stop()


if __name__ == "__main__":
    main()
