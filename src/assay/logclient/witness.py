"""``assay log witness``: check a log's checkpoint and cosign it (C2SP tlog-cosignature).

What a witness promises (C2SP tlog-witness, "Introduction"): it never cosigns two checkpoints
of one log that are not consistent with each other. So, per log origin, it keeps the largest
checkpoint it cosigned (``<state>/<sha256(origin)>.checkpoint``, the format ``assay verify``
keeps its own in), and cosigns a new one only if the log's key signed it and a consistency
proof from the kept one (built from the log's tiles, checked against both roots) holds. The
new checkpoint is kept BEFORE the cosignature is made, so a crash between the two can never
let a later run cosign a fork of a checkpoint it already cosigned. A smaller tree (rollback),
another root at the same size or a failing proof (fork), and a bad signature are refused.

The cosignature is cosignature/v1 (Ed25519, timestamped), submitted to the index at
``<log prefix>cosignature`` as the checkpoint text plus the witness's signature line.

The witness key file holds one line, in the style of Go's note signer keys:
``PRIVATE+KEY+<name>+<key ID>+<base64(0x04 || 32-byte Ed25519 seed)>`` (type 0x04 =
cosignature/v1, so it cannot be mistaken for a log's note key), mode 0600; a file others can
read is refused, as ssh refuses one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from assay.log import cosignature, note
from assay.log.checkpoint import Checkpoint
from assay.logclient.remote import RemoteLog
from assay.verify.errors import FetchError
from assay.verify.logcheck import CheckpointState

KEY_FILE = "witness.key"
_PREFIX = "PRIVATE+KEY+"


class WitnessKeyError(RuntimeError):
    """The witness key cannot be created or read; the message names the file and why."""


def default_state_dir() -> Path:
    """``assay/witness`` under the user's state directory: what it cosigned must outlive caches."""
    return Path(platformdirs.user_state_dir("assay", appauthor=False)) / "witness"


def signer_key(signer: cosignature.CosignatureSigner, private: Ed25519PrivateKey) -> str:
    seed = private.private_bytes_raw()
    return f"{_PREFIX}{signer.name}+{signer.key_id:08x}+{note.b64encode(bytes([cosignature.COSIGNATURE_V1]) + seed)}"


def create_key(path: Path, name: str) -> cosignature.CosignatureSigner:
    """A new witness key named ``name`` in ``path`` (mode 0600; an existing file is kept)."""
    if path.exists():
        raise WitnessKeyError(f"witness key {path} exists already (it is what the witness is known by)")
    private = Ed25519PrivateKey.generate()
    try:
        signer = cosignature.CosignatureSigner(name, private)
    except note.NoteError as exc:
        raise WitnessKeyError(f"{name!r} is not a key name: {exc}") from None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WitnessKeyError(f"witness key {path} exists already") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(signer_key(signer, private) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return signer


def load_key(path: Path) -> cosignature.CosignatureSigner:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        hint = "create one with `assay log witness-key --name NAME`"
        raise WitnessKeyError(f"no witness key at {path}: {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WitnessKeyError(f"cannot read witness key {path}: {exc}") from None
    if mode & 0o077:
        raise WitnessKeyError(f"witness key {path} is readable by others (mode {mode:o}): chmod 600 it")
    parts = text.split("+", 4)
    if len(parts) != 5 or not text.startswith(_PREFIX):
        raise WitnessKeyError(f"witness key {path} is not PRIVATE+KEY+<name>+<key ID>+<base64>")
    _, _, name, key_id, b64 = parts
    try:
        raw = note.b64decode(b64)
        if len(raw) != 33 or raw[0] != cosignature.COSIGNATURE_V1:
            raise note.NoteError("not a cosignature/v1 key (0x04 and a 32-byte Ed25519 seed)")
        signer = cosignature.CosignatureSigner(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
    except note.NoteError as exc:
        raise WitnessKeyError(f"witness key {path}: {exc}") from None
    if f"{signer.key_id:08x}" != key_id.lower():
        raise WitnessKeyError(f"witness key {path}: the key ID does not match the name and key")
    return signer


@dataclass(frozen=True)
class Cosigned:
    checkpoint: Checkpoint
    previous: Checkpoint | None
    #: The checkpoint text and the witness's signature line: what is submitted.
    note: bytes


def witness(log: RemoteLog, signer: cosignature.CosignatureSigner, state: CheckpointState) -> Cosigned:
    """Check the log's current checkpoint against the last one cosigned, keep it, cosign it.
    Raises ``LogProblem`` (bad signature, rollback, fork, unreachable) without cosigning."""
    current, _ = log.checkpoint()
    previous = state.get(log.origin)
    if previous is None or previous.size < current.size:
        log.check_consistency(previous, current, log.reader(current))
    else:
        log.check_consistency(previous, current, _no_hashes)  # same size or smaller: no proof
    if previous != current:
        state.put(current)
    return Cosigned(current, previous, note.sign(current.text(), [signer]))


def _no_hashes(indexes: Sequence[int]) -> list[bytes]:  # pragma: no cover - never called
    raise AssertionError("no proof is needed between trees of the same size")


def submit(log: RemoteLog, cosigned: Cosigned) -> str:
    """POST the cosignature to the index (``<prefix>cosignature``); its answer, or raise."""
    url = log.prefix + "cosignature"
    got = log.http.post(url, cosigned.note, content_type="text/plain; charset=utf-8", limit=64 * 1024)
    text = got.body.decode("utf-8", "replace").strip()
    if got.status != 200:
        raise FetchError(f"{url}: HTTP {got.status}: {text}")
    return text
