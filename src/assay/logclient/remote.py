"""A transparency log read over HTTP, as C2SP tlog-tiles lays it out under its prefix.

Every answer is checked before it is used: the checkpoint against the log's verifier key and
origin (C2SP signed-note, tlog-checkpoint), the tiles against the checkpoint's root
(``tiles.tile_hash_reader``), each entry of an entry bundle against its leaf hash in the level-0
tile, and a new checkpoint against an earlier one by an RFC 9162 §2.1.4 consistency proof
built from the new tree's tiles. Failures are ``LogProblem``s: the caller decides what a bad
signature, a rollback or a fork means for it (a witness refuses to cosign; a monitor alerts).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

from assay.log import merkle, note, tiles
from assay.log.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from assay.verify.errors import FetchError
from assay.verify.fetch import Http

MAX_CHECKPOINT = 64 * 1024
MAX_TILE = tiles.TILE_WIDTH * merkle.HASH_SIZE
MAX_BUNDLE = tiles.TILE_WIDTH * (2 + tiles.MAX_ENTRY_SIZE)


class Problem(enum.StrEnum):
    UNREACHABLE = "log-unreachable"
    SIGNATURE = "log-signature"
    ROLLBACK = "log-rollback"
    FORK = "log-fork"


class LogProblem(Exception):
    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def log_prefix(url: str) -> str:
    """The URL under which ``checkpoint`` and ``tile/`` are (tlog-tiles' prefix), ending in
    ``/``: an index's base URL gets ``log/`` added (assay serves its log at ``{index}/log/``)."""
    url = url if url.endswith("/") else url + "/"
    return url if url.endswith("/log/") else urljoin(url, "log/")


@dataclass
class RemoteLog:
    prefix: str
    verifier: note.Ed25519Verifier
    http: Http

    @classmethod
    def open(cls, url: str, key: str, http: Http) -> RemoteLog:
        """``key`` is the log's verifier key, ``<origin>+<key ID>+<base64(0x01 || key)>``."""
        try:
            verifier = note.Ed25519Verifier.from_verifier_key(key.strip())
        except note.NoteError as exc:
            raise ValueError(f"--key is not the log's note verifier key: {exc}") from None
        return cls(log_prefix(url), verifier, http)

    @property
    def origin(self) -> str:
        # C2SP tlog-checkpoint: the log's key name is its origin.
        return self.verifier.name

    def _get(self, path: str, limit: int, accept: str) -> bytes:
        url = urljoin(self.prefix, path)
        try:
            got = self.http.get(url, accept=accept, limit=limit)
        except FetchError as exc:
            raise LogProblem(Problem.UNREACHABLE, str(exc)) from None
        if got.status != 200:
            raise LogProblem(Problem.UNREACHABLE, f"{url}: HTTP {got.status}")
        return got.body

    def checkpoint(self) -> tuple[Checkpoint, bytes]:
        """The log's current checkpoint, verified; and the note as served (cosignatures too)."""
        body = self._get("checkpoint", MAX_CHECKPOINT, "text/plain")
        try:
            checkpoint, _ = open_checkpoint(body, [self.verifier], self.origin)
        except (note.NoteError, CheckpointError) as exc:
            raise LogProblem(Problem.SIGNATURE, f"the checkpoint of {self.prefix} does not verify: {exc}") from None
        return checkpoint, body

    def reader(self, checkpoint: Checkpoint) -> merkle.HashReader:
        """Hashes of the tree of ``checkpoint``, from its tiles, each checked against its root."""

        def fetch(tile: tiles.Tile) -> bytes:
            return self._get(tile.path(), MAX_TILE, "application/octet-stream")

        return tiles.tile_hash_reader(checkpoint.size, fetch, root=checkpoint.root_hash)

    def check_consistency(self, old: Checkpoint | None, new: Checkpoint, read: merkle.HashReader) -> None:
        """Raise unless ``new`` extends ``old`` (RFC 9162 §2.1.4); nothing to check without one."""
        if old is None:
            return
        if old.size > new.size:
            raise LogProblem(
                Problem.ROLLBACK, f"the log's tree shrank from {old.size} to {new.size} entries (a rollback)"
            )
        if old.size == new.size:
            if old.root_hash != new.root_hash:
                raise LogProblem(Problem.FORK, f"two different trees of size {new.size}: the log forked")
            return
        try:
            proof = merkle.consistency_proof(old.size, new.size, read)
            merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
        except (merkle.ProofError, tiles.TileError) as exc:
            raise LogProblem(
                Problem.FORK, f"the tree of size {new.size} does not extend the one of size {old.size}: {exc}"
            ) from None

    def entries(self, first: int, checkpoint: Checkpoint, read: merkle.HashReader) -> Iterator[tuple[int, bytes]]:
        """Entries ``first`` .. ``size - 1`` with their indexes, bundle by bundle, each checked
        against its leaf hash under the checkpoint's root."""
        size = checkpoint.size
        for n in range(first // tiles.TILE_WIDTH, -(-size // tiles.TILE_WIDTH)):
            start = n * tiles.TILE_WIDTH
            tile = tiles.Tile(0, n, min(tiles.TILE_WIDTH, size - start))
            bundle = self._get(tile.entries_path(), MAX_BUNDLE, "application/octet-stream")
            try:
                found = tiles.decode_bundle(bundle, tile.width)
            except tiles.TileError as exc:
                raise LogProblem(Problem.FORK, f"{tile.entries_path()}: {exc}") from None
            try:
                leaves = read([merkle.stored_hash_index(0, i) for i in range(start, start + tile.width)])
            except tiles.TileError as exc:
                raise LogProblem(Problem.FORK, f"the log's tiles do not match its checkpoint: {exc}") from None
            for i, (entry, leaf) in enumerate(zip(found, leaves, strict=True), start=start):
                if merkle.leaf_hash(entry) != leaf:
                    raise LogProblem(Problem.FORK, f"entry {i} does not hash to its leaf in the signed tree")
                if i >= first:
                    yield i, entry
