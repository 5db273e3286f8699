"""C2SP tlog-cosignature, Ed25519 (cosignature/v1): a witness's signature on a checkpoint.

From the C2SP tlog-cosignature spec:

- "Format": a cosignature is a note signature line on the checkpoint, with key ID
  SHA-256(name || "\\n" || 0x04 || 32-byte Ed25519 public key)[:4]; its signature bytes are a
  `timestamped_signature`: a big-endian u64 POSIX timestamp (at most 2**63 - 1), then the
  64-byte Ed25519 signature. Public keys may be written as verifier keys of type 0x04.
- "Ed25519 signed message": `cosignature/v1\\n`, `time <timestamp>\\n` (decimal, no leading
  zeroes), then the checkpoint's whole note text.

The ML-DSA-44 (subtree/v1) cosignature the spec also defines is not implemented: `cryptography`
has no ML-DSA. Its signature lines are unknown keys to us and so ignored, as signed-note says.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from assay.log import note

COSIGNATURE_V1 = 0x04  # signed-note "Signature types"
MAX_TIMESTAMP = 2**63 - 1


def signed_message(text: bytes, timestamp: int) -> bytes:
    """The cosignature/v1 message over a checkpoint's note text."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise note.NoteError(f"a cosignature timestamp is between 0 and 2**63 - 1, not {timestamp}")
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def timestamp_of(signature: bytes) -> int:
    """The timestamp of a cosignature's signature bytes (those after the key ID)."""
    if len(signature) != 8 + 64:
        raise note.NoteError(f"an Ed25519 cosignature is 72 bytes after its key ID, not {len(signature)}")
    (timestamp,) = struct.unpack(">Q", signature[:8])
    return int(timestamp)


class CosignatureVerifier:
    """A note `Verifier` for a witness's cosignature/v1 signatures."""

    def __init__(self, name: str, public_key: bytes) -> None:
        if not note.is_valid_key_name(name):
            raise note.NoteError(f"{name!r} is not a valid key name")
        if len(public_key) != 32:
            raise note.NoteError(f"an Ed25519 public key is 32 bytes, not {len(public_key)}")
        self._name = name
        self.public_key = public_key
        self._key = Ed25519PublicKey.from_public_bytes(public_key)
        self._key_id = note.key_id(name, bytes([COSIGNATURE_V1]) + public_key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @classmethod
    def from_verifier_key(cls, vkey: str) -> CosignatureVerifier:
        parsed = note.VerifierKey.parse(vkey)
        if parsed.type != COSIGNATURE_V1:
            raise note.NoteError(f"verifier key {parsed.name!r} is of type {parsed.type:#04x}, not cosignature/v1")
        return cls(parsed.name, parsed.key)

    def verifier_key(self) -> str:
        return str(note.VerifierKey(self.name, self.key_id, COSIGNATURE_V1, self.public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            timestamp = timestamp_of(signature)
            self._key.verify(signature[8:], signed_message(message, timestamp))
        except (InvalidSignature, note.NoteError):
            return False
        return True


class CosignatureSigner:
    """A note `Signer` that cosigns checkpoints, stamping each signature with `clock()`."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey, clock: Callable[[], float] = time.time) -> None:
        if not note.is_valid_key_name(name):
            raise note.NoteError(f"{name!r} is not a valid key name")
        self._name = name
        self._private = private_key
        self._clock = clock
        self.public_key = private_key.public_key().public_bytes_raw()
        self._key_id = note.key_id(name, bytes([COSIGNATURE_V1]) + self.public_key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        timestamp = int(self._clock())
        return struct.pack(">Q", timestamp) + self._private.sign(signed_message(message, timestamp))


def cosign(signed_checkpoint: bytes, cosigner: CosignatureSigner) -> bytes:
    """Add the cosigner's signature line to a signed checkpoint, keeping the others."""
    text, sigs = note.parse(signed_checkpoint)
    return note.sign(text, [cosigner], keep=sigs)
