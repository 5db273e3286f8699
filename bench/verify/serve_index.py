"""Serve a benchmark directory as a static PEP 740 index (tests/support/static_index.py).

``WORK/dists/*`` are the files; ``WORK/provenance/<filename>.provenance`` their provenance.
With ``--log``, the index also has a transparency log (issue 13) built with assay's own log
code: one ``upload`` entry per file, tiles, a checkpoint signed by a fresh key, and each file's
receipt listed on its page, as ``assay serve`` offers them. Prints ``serving <url>`` once
listening (then ``log-key <verifier key>`` with ``--log``); runs until stdin closes.

Usage: python -m bench.verify.serve_index WORK [--log]
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from packaging.utils import parse_wheel_filename
from tests.support.static_index import StaticIndex

from assay.log import checkpoint, entries, merkle, note, proof, tiles


def add_log(index: StaticIndex, origin: str) -> str:
    """Log every file of ``index``; returns the log's verifier key."""
    signer = note.Ed25519Signer.generate(origin)
    store = merkle.MemoryHashStore()
    data = []
    when = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    for f in index.files.values():
        entry = entries.encode(entries.upload(
            project=f.project, version=f.version, filename=f.filename, sha256=f.sha256,
            size=len(f.content), upload_time=when, publisher=None, token="bench-token-id", provenance=None,  # noqa: S106 - a token id
        ))
        store.append(entry)
        data.append(entry)
    size = len(data)
    signed = checkpoint.sign(checkpoint.Checkpoint(origin, size, merkle.tree_hash(size, store)), [signer])
    index.log_files["checkpoint"] = signed
    for tile in tiles.tiles_for_size(size):
        index.log_files[tile.path()] = tiles.tile_data(tile, store)
    for i, (f, entry) in enumerate(zip(index.files.values(), data, strict=True)):
        index.receipts[f.filename] = proof.make(i, store, signed, extra=entry).format()
    return signer.verifier_key()


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
    if "--log" in sys.argv[2:]:
        origin = f"127.0.0.1:{index.port}"
        print(f"log-key {add_log(index, origin)}", flush=True)
    try:
        sys.stdin.read()
    finally:
        index.stop()


if __name__ == "__main__":
    main()
