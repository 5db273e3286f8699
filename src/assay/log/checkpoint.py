"""C2SP tlog-checkpoint: the note text of a signed tree head, formatted and parsed strictly.

From the C2SP tlog-checkpoint spec, "Note text": at least three non-empty lines, each ending in
a newline:

1. the origin, a non-empty identifier of the log (C2SP tlog-tiles "Parameters": the log's URL
   prefix without its scheme and trailing slashes, e.g. `example.com/team`);
2. the tree size in ASCII decimal, without leading zeroes (`0` for the empty tree);
3. the RFC 6962 root hash in standard base64;
4. optional extension lines, each non-empty (NOT RECOMMENDED; assay writes none).

"Signatures": the log's key name SHOULD be the origin, and clients ignore unknown signatures
(the signed-note rule), which is what lets witnesses add cosignatures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from assay.log import note
from assay.log.merkle import HASH_SIZE

_SIZE = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(ValueError):
    """A note text that is not a checkpoint, or a checkpoint from the wrong log."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("a checkpoint's origin must be one non-empty line")
        if self.size < 0:
            raise CheckpointError(f"a tree size cannot be negative ({self.size})")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"a root hash is {HASH_SIZE} bytes, not {len(self.root_hash)}")
        for line in self.extensions:
            if not line or "\n" in line:
                raise CheckpointError("extension lines must be single non-empty lines")

    def text(self) -> str:
        """The note text: origin, size, base64 root hash, extension lines, each newline-ended."""
        lines = [self.origin, str(self.size), note.b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise CheckpointError("a checkpoint's text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint has at least three lines: origin, tree size, root hash")
        origin, size, root, *extensions = lines
        if not origin:
            raise CheckpointError("the checkpoint's origin line is empty")
        if not _SIZE.fullmatch(size):
            raise CheckpointError(f"{size[:30]!r} is not a tree size (decimal, no leading zeroes)")
        try:
            root_hash = note.b64decode(root)
        except note.NoteError as exc:
            raise CheckpointError(f"the checkpoint's root hash {root[:60]!r} is not base64") from exc
        if len(root_hash) != HASH_SIZE or note.b64encode(root_hash) != root:
            raise CheckpointError(f"the checkpoint's root hash {root[:60]!r} is not a base64 SHA-256 hash")
        if any(not line for line in extensions):
            raise CheckpointError("a checkpoint's extension lines must be non-empty")
        return cls(origin, int(size), root_hash, tuple(extensions))


def sign(checkpoint: Checkpoint, signers: Sequence[note.Signer]) -> bytes:
    """The signed checkpoint note."""
    return note.sign(checkpoint.text(), signers)


def open_checkpoint(
    msg: bytes, verifiers: Iterable[note.Verifier], origin: str | None = None
) -> tuple[Checkpoint, note.Note]:
    """Verify a signed checkpoint and parse it; `origin`, if given, must be its origin line."""
    opened = note.open_note(msg, verifiers)
    checkpoint = Checkpoint.parse(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"the checkpoint is from log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint, opened
