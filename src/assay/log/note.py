"""C2SP signed-note: text signed by one or more keys, with Ed25519 signers and verifiers.

From the C2SP signed-note spec:

- "Format": a note is a text ending in a newline, a blank line, then one or more signature
  lines `— <key name> base64(key ID || signature)`; the whole note is valid UTF-8 with no
  control characters but newline; the text is separated from the signatures by the last
  empty line; key names are non-empty and have no Unicode spaces and no `+`.
- "Signatures": unknown signatures (name and key ID not both matching a known key) are
  ignored; a known key's signature that fails rejects the note; a note with no verified
  known signature is rejected. Verifiers must accept at least 16 signatures; we stop at 100,
  as Go's golang.org/x/mod/sumdb/note does.
- "Signature types" / "Ed25519 signatures": key ID = SHA-256(name || 0x0A || type || public
  key)[:4], big-endian, with type 0x01 for Ed25519 over the note text.

Key strings are those of Go's sumdb/note (which C2SP signed-note calls verifier keys, "vkeys"):
`<name>+<8 hex digits of key ID>+<base64(type || public key)>`, and for a signer
`PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || 32-byte Ed25519 seed)>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01  # "Signature types"
MAX_SIGNATURES = 100
_SIG_PREFIX = "— "  # em dash, space


class NoteError(ValueError):
    """A malformed note or key, or a note that does not verify."""


class UnverifiedNoteError(NoteError):
    """The note has no signature by any known key ("clients MUST reject the note")."""


class InvalidSignatureError(NoteError):
    """A known key's signature does not verify ("clients SHOULD reject the whole note")."""


def key_id(name: str, key: bytes) -> int:
    """SHA-256(name || 0x0A || type || public key)[:4] as a big-endian uint32; `key` = type || key."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key).digest()[:4], "big")


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty and contain no Unicode spaces nor `+`."""
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def b64decode(text: str) -> bytes:
    """Standard base64 (RFC 4648 §4), padded, nothing else accepted."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise NoteError(f"{text[:60]!r} is not base64") from exc


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Verifier(Protocol):
    """A key a note's signature lines can be checked against."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


class Signer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class VerifierKey:
    """A parsed verifier key string: name, key ID, signature type and key material."""

    name: str
    key_id: int
    type: int
    key: bytes

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        name, sep1, rest = vkey.partition("+")
        hash_hex, sep2, key_b64 = rest.partition("+")
        if not (sep1 and sep2 and is_valid_key_name(name)):
            raise NoteError(f"{vkey!r} is not a verifier key (<name>+<key ID>+<base64 key>)")
        if len(hash_hex) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hash_hex):
            raise NoteError(f"verifier key {name!r}: the key ID must be 8 hex digits")
        key = b64decode(key_b64)
        if not key:
            raise NoteError(f"verifier key {name!r} has no key")
        if int(hash_hex, 16) != key_id(name, key):
            raise NoteError(f"verifier key {name!r}: the key ID does not match the name and key")
        return cls(name, int(hash_hex, 16), key[0], key[1:])

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([self.type]) + self.key)}"


class Ed25519Verifier:
    """Verifies Ed25519 note signatures (type 0x01) over the note text."""

    def __init__(self, name: str, public_key: bytes) -> None:
        if not is_valid_key_name(name):
            raise NoteError(f"{name!r} is not a valid key name (non-empty, no spaces, no '+')")
        if len(public_key) != 32:
            raise NoteError(f"an Ed25519 public key is 32 bytes, not {len(public_key)}")
        self._name = name
        self.public_key = public_key
        self._key = Ed25519PublicKey.from_public_bytes(public_key)
        self._key_id = key_id(name, bytes([ED25519]) + public_key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @classmethod
    def from_verifier_key(cls, vkey: str) -> Ed25519Verifier:
        parsed = VerifierKey.parse(vkey)
        if parsed.type != ED25519:
            raise NoteError(f"verifier key {parsed.name!r} is of type {parsed.type:#04x}, not Ed25519 (0x01)")
        return cls(parsed.name, parsed.key)

    def verifier_key(self) -> str:
        """`<name>+<hex key ID>+<base64(0x01 || public key)>`."""
        return str(VerifierKey(self.name, self.key_id, ED25519, self.public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Ed25519Signer:
    """Signs notes with an Ed25519 key (type 0x01)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not is_valid_key_name(name):
            raise NoteError(f"{name!r} is not a valid key name (non-empty, no spaces, no '+')")
        self._name = name
        self._private = private_key
        self._public = private_key.public_key().public_bytes_raw()
        self._key_id = key_id(name, bytes([ED25519]) + self._public)

    def renamed(self, name: str) -> Ed25519Signer:
        """The same key under another name (another origin: one key signs several logs, each
        with its own verifier key, since the key ID covers the name)."""
        return Ed25519Signer(name, self._private)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @classmethod
    def generate(cls, name: str) -> Ed25519Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_signer_key(cls, skey: str) -> Ed25519Signer:
        """Parse `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("not a signer key (PRIVATE+KEY+<name>+<key ID>+<base64 key>)")
        _, _, name, hash_hex, key_b64 = parts
        key = b64decode(key_b64)
        if len(key) != 33 or key[0] != ED25519:
            raise NoteError(f"signer key {name!r} is not an Ed25519 key (0x01 and a 32-byte seed)")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(key[1:]))
        if len(hash_hex) != 8 or f"{signer.key_id:08x}" != hash_hex.lower():
            raise NoteError(f"signer key {name!r}: the key ID does not match the name and key")
        return signer

    def signer_key(self) -> str:
        seed = self._private.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64encode(bytes([ED25519]) + seed)}"

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.name, self._public)

    def verifier_key(self) -> str:
        return self.verifier().verifier_key()

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {b64encode(struct.pack('>I', self.key_id) + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, the signatures that verified and those by unknown keys."""

    text: str
    verified: tuple[Signature, ...] = ()
    unknown: tuple[Signature, ...] = field(default=())


def _check_text(text: str, what: str) -> None:
    """"Format": valid UTF-8 with no ASCII control characters but newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: the one str that is not UTF-8
        raise NoteError(f"the {what} is not valid UTF-8") from exc
    for ch in text:
        if ch < " " and ch != "\n":
            raise NoteError(f"the {what} contains the control character {ch!r}")


def sign(text: str, signers: Sequence[Signer], keep: Iterable[Signature] = ()) -> bytes:
    """A signed note: `text` (ending in a newline), a blank line, one line per signature.

    `keep` carries signature lines over from an earlier note (a witness's cosignature, say),
    except those of the keys signing now.
    """
    if not text.endswith("\n"):
        raise NoteError("a note's text must end in a newline")
    _check_text(text, "note text")
    if not signers and not keep:
        raise NoteError("a signed note needs at least one signature")
    message = text.encode()
    signing = {(s.name, s.key_id) for s in signers}
    lines = [sig.line() for sig in keep if (sig.name, sig.key_id) not in signing]
    for signer in signers:
        if not is_valid_key_name(signer.name):
            raise NoteError(f"{signer.name!r} is not a valid key name")
        lines.append(Signature(signer.name, signer.key_id, signer.sign(message)).line())
    return (text + "\n" + "".join(lines)).encode()


def parse(msg: bytes) -> tuple[str, list[Signature]]:
    """Split a note into its text and signature lines, checking the format only."""
    try:
        whole = msg.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("a note must be valid UTF-8") from exc
    _check_text(whole, "note")
    split = whole.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line before its signatures")
    text, sig_block = whole[: split + 1], whole[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise NoteError("the note's signature lines must be there and end in a newline")
    sigs = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"{line[:60]!r} is not a signature line ('— <name> <base64>')")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not is_valid_key_name(name):
            raise NoteError(f"{name!r} is not a valid key name")
        raw = b64decode(b64)
        if len(raw) < 5:
            raise NoteError(f"the signature by {name!r} is too short")
        sigs.append(Signature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
        if len(sigs) > MAX_SIGNATURES:
            raise NoteError(f"the note has more than {MAX_SIGNATURES} signatures")
    return text, sigs


def open_note(msg: bytes, verifiers: Iterable[Verifier]) -> Note:
    """Verify a note against the known keys; return its text and signatures.

    Raises InvalidSignatureError if a known key's signature fails, UnverifiedNoteError if no
    known key signed it, NoteError if it is malformed.
    """
    known: dict[tuple[str, int], Verifier] = {}
    for v in verifiers:
        if (v.name, v.key_id) in known:
            raise NoteError(f"two verifiers for the key {v.name}+{v.key_id:08x}")
        known[(v.name, v.key_id)] = v
    text, sigs = parse(msg)
    message = text.encode()
    verified: list[Signature] = []
    unknown: list[Signature] = []
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            if sig not in unknown:
                unknown.append(sig)
            continue
        if any((s.name, s.key_id) == (sig.name, sig.key_id) for s in verified):
            continue  # one verified signature per key is enough (as Go's note.Open)
        if not verifier.verify(message, sig.signature):
            raise InvalidSignatureError(f"the signature by {sig.name}+{sig.key_id:08x} does not verify")
        verified.append(sig)
    if not verified:
        raise UnverifiedNoteError("the note is signed by no known key")
    return Note(text, tuple(verified), tuple(unknown))
