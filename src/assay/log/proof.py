"""C2SP tlog-proof: an offline-verifiable receipt that an entry is in the log (`.tlog-proof`).

From the C2SP tlog-proof spec, "Format", lines separated by newlines:

1. `c2sp.org/tlog-proof@v1`;
2. optionally `extra <base64>`: opaque, unauthenticated application data;
3. `index <n>`: the entry's zero-based index, decimal without leading zeroes;
4. zero or more lines, each one base64 SHA-256 hash: the RFC 6962 §2.1.1 inclusion proof,
   from the leaf's sibling up to the root's child;
5. an empty line, then the signed checkpoint verbatim (C2SP tlog-checkpoint), cosignatures
   included.

Proofs are stored with the file extension `.tlog-proof`. Verifying one needs the entry, the
log's origin and its verifier key; it checks the checkpoint's signature, then the inclusion
proof against the checkpoint's root (RFC 9162 §2.1.3.2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from assay.log import merkle, note
from assay.log.checkpoint import Checkpoint, CheckpointError, open_checkpoint

HEADER = "c2sp.org/tlog-proof@v1"
SUFFIX = ".tlog-proof"
_INDEX = re.compile(r"index (0|[1-9][0-9]*)")


class TlogProofError(ValueError):
    """A malformed proof, or one that does not prove the entry."""


@dataclass(frozen=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes  # the signed checkpoint note, verbatim
    extra: bytes | None = None

    def format(self) -> bytes:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {note.b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(note.b64encode(h) for h in self.hashes)
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint

    @classmethod
    def parse(cls, data: bytes) -> TlogProof:
        head, sep, checkpoint = data.partition(b"\n\n")
        if not sep:
            raise TlogProofError("a tlog-proof has an empty line between the proof and the checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError as exc:
            raise TlogProofError("the proof lines of a tlog-proof are ASCII") from exc
        if lines[0] != HEADER:
            raise TlogProofError(f"a tlog-proof starts with the line {HEADER!r}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            try:
                extra = note.b64decode(rest.pop(0)[len("extra ") :])
            except note.NoteError as exc:
                raise TlogProofError("the extra data of the tlog-proof is not base64") from exc
        if not rest or not (m := _INDEX.fullmatch(rest[0])):
            raise TlogProofError("a tlog-proof has an 'index <n>' line (decimal, no leading zeroes)")
        hashes = []
        for line in rest[1:]:
            try:
                h = note.b64decode(line)
            except note.NoteError as exc:
                raise TlogProofError(f"proof line {line[:60]!r} is not base64") from exc
            if len(h) != merkle.HASH_SIZE:
                raise TlogProofError(f"proof line {line[:60]!r} is not a SHA-256 hash")
            hashes.append(h)
        return cls(int(m[1]), tuple(hashes), checkpoint, extra)

    def verify(
        self, entry: bytes, verifiers: Iterable[note.Verifier], origin: str
    ) -> tuple[Checkpoint, note.Note]:
        """Check the checkpoint's signatures and that `entry` is at `index` under its root."""
        return self.verify_leaf_hash(merkle.leaf_hash(entry), verifiers, origin)

    def verify_leaf_hash(
        self, leaf: bytes, verifiers: Iterable[note.Verifier], origin: str
    ) -> tuple[Checkpoint, note.Note]:
        try:
            checkpoint, opened = open_checkpoint(self.checkpoint, verifiers, origin)
        except (note.NoteError, CheckpointError) as exc:
            raise TlogProofError(f"the proof's checkpoint does not verify: {exc}") from exc
        try:
            merkle.verify_inclusion(leaf, self.index, checkpoint.size, self.hashes, checkpoint.root_hash)
        except merkle.ProofError as exc:
            raise TlogProofError(str(exc)) from exc
        return checkpoint, opened


def make(index: int, read: merkle.HashReader, signed_checkpoint: bytes, extra: bytes | None = None) -> TlogProof:
    """A proof for entry `index` against a signed checkpoint (the tree size is the checkpoint's)."""
    size = Checkpoint.parse(note.parse(signed_checkpoint)[0]).size
    return TlogProof(index, tuple(merkle.inclusion_proof(index, size, read)), signed_checkpoint, extra)
