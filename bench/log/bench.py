"""The transparency log's format core (issue 13) on a log of N entries (default 1,000,000).

Timed as the process's CPU time (time.process_time, so that the figures hold on a shared
machine: the work is single-threaded), in memory (assay.log.merkle.MemoryHashStore: the
stored-hash array a database table or file would hold), each phase on its own:

* append and hash: every entry's leaf hash and the subtree hashes it completes;
* tree head: MTH of the whole log, then a signed checkpoint (C2SP tlog-checkpoint, Ed25519);
* proofs: inclusion proofs for random entries of the full log and consistency proofs between
  random sizes, each generated and then verified (RFC 9162);
* receipts: a C2SP tlog-proof for random entries (format, parse, verify with the signature);
* tiles: every C2SP tlog-tiles tile of the full log (full and partial) and every entry bundle,
  with their count and bytes.

Entries are 120-byte records shaped like what the log will hold (a file name, its SHA-256 and an
upload time). Usage (from the repository root):

    .venv/bin/python -m bench.log.bench [--entries 1000000] [--proofs 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import resource
import time

from assay.log import checkpoint, merkle, note, proof, tiles
from assay.log.checkpoint import Checkpoint


def entry(i: int) -> bytes:
    digest = hashlib.sha256(b"%d" % i).hexdigest()
    return b"proj-%07d-1.0-py3-none-any.whl %s 2026-12-01T12:00:00Z" % (i, digest.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="log size (entries)")
    parser.add_argument("--proofs", type=int, default=10_000, help="proofs of each kind to generate (count)")
    args = parser.parse_args()
    n, rng = args.entries, random.Random(13)
    results: dict[str, object] = {"entries": n, "python": platform.python_version(), "machine": platform.machine()}

    entries = [entry(i) for i in range(n)]
    store = merkle.MemoryHashStore()
    t0 = time.process_time()
    for e in entries:
        store.append(e)
    elapsed = time.process_time() - t0
    results["append_and_hash"] = {
        "total_s": round(elapsed, 2), "per_entry_us": round(elapsed / n * 1e6, 2),
        "stored_hashes": len(store.hashes), "stored_bytes": len(store.hashes) * merkle.HASH_SIZE,
    }

    signer = note.Ed25519Signer.generate("example.com/team")
    t0 = time.process_time()
    root = merkle.tree_hash(n, store)
    head_s = time.process_time() - t0
    t0 = time.process_time()
    rounds = 1000
    for _ in range(rounds):
        signed = checkpoint.sign(Checkpoint("example.com/team", n, root), [signer])
    sign_s = (time.process_time() - t0) / rounds
    results["checkpoint"] = {
        "tree_head_us": round(head_s * 1e6, 1), "sign_us": round(sign_s * 1e6, 1), "bytes": len(signed),
    }

    indexes = [rng.randrange(n) for _ in range(args.proofs)]
    t0 = time.process_time()
    inclusion = [merkle.inclusion_proof(i, n, store) for i in indexes]
    gen_s = time.process_time() - t0
    leaves = [merkle.leaf_hash(entries[i]) for i in indexes]
    t0 = time.process_time()
    for i, leaf, p in zip(indexes, leaves, inclusion, strict=True):
        merkle.verify_inclusion(leaf, i, n, p, root)
    ver_s = time.process_time() - t0
    results["inclusion_proof"] = {
        "generate_us": round(gen_s / args.proofs * 1e6, 1), "verify_us": round(ver_s / args.proofs * 1e6, 1),
        "hashes_max": max(map(len, inclusion)), "bytes_max": max(map(len, inclusion)) * merkle.HASH_SIZE,
    }

    sizes = [sorted((rng.randint(1, n), rng.randint(1, n))) for _ in range(args.proofs)]
    t0 = time.process_time()
    consistency = [merkle.consistency_proof(old, new, store) for old, new in sizes]
    gen_s = time.process_time() - t0
    roots = [(merkle.tree_hash(old, store), merkle.tree_hash(new, store)) for old, new in sizes]
    t0 = time.process_time()
    for (old, new), (r1, r2), p in zip(sizes, roots, consistency, strict=True):
        merkle.verify_consistency(old, new, r1, r2, p)
    ver_s = time.process_time() - t0
    results["consistency_proof"] = {
        "generate_us": round(gen_s / args.proofs * 1e6, 1), "verify_us": round(ver_s / args.proofs * 1e6, 1),
        "hashes_max": max(map(len, consistency)),
    }

    receipts = 1000
    t0 = time.process_time()
    texts = [proof.make(i, store, signed).format() for i in indexes[:receipts]]
    make_s = time.process_time() - t0
    verifier = signer.verifier()
    t0 = time.process_time()
    for i, text in zip(indexes[:receipts], texts, strict=True):
        proof.TlogProof.parse(text).verify(entries[i], [verifier], "example.com/team")
    check_s = time.process_time() - t0
    results["tlog_proof"] = {
        "make_us": round(make_s / receipts * 1e6, 1), "parse_and_verify_us": round(check_s / receipts * 1e6, 1),
        "bytes_max": max(map(len, texts)),
    }

    t0 = time.process_time()
    all_tiles = tiles.tiles_for_size(n)
    tile_bytes = sum(len(tiles.tile_data(t, store)) for t in all_tiles)
    tiles_s = time.process_time() - t0
    level0 = [t for t in all_tiles if t.level == 0]
    t0 = time.process_time()
    bundle_bytes = sum(
        len(tiles.encode_bundle(entries[t.n * tiles.TILE_WIDTH : t.n * tiles.TILE_WIDTH + t.width])) for t in level0
    )
    bundles_s = time.process_time() - t0
    results["tiles"] = {
        "tiles": len(all_tiles), "by_level": {lvl: sum(t.level == lvl for t in all_tiles) for lvl in range(4)},
        "tile_bytes": tile_bytes, "tiles_s": round(tiles_s, 2),
        "bundles": len(level0), "bundle_bytes": bundle_bytes, "bundles_s": round(bundles_s, 2),
    }
    # The issue's figure for a 57-million-entry log (entry 0's path, the deepest), from the shape
    # of the tree alone.
    big = merkle.inclusion_proof(0, 57_000_000, lambda ix: [b"\x00" * 32] * len(ix))
    results["inclusion_proof_57M"] = {"hashes": len(big), "bytes": len(big) * merkle.HASH_SIZE}
    results["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
