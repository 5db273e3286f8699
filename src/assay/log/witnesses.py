"""The witnesses an index accepts, and the cosignatures they submit (issue 13 item 5).

A witness (C2SP tlog-witness's role, here a client: ``assay log witness``) fetches the index's
checkpoint, checks it is consistent with the last one it cosigned, and submits its
cosignature (C2SP tlog-cosignature, cosignature/v1) to ``POST /log/cosignature``. The index
accepts one only from a key the admin configured (``assay admin log witness add``) and only
for a checkpoint it signed itself (same text as the one stored at that size), checks the
signature, and stores the line; ``/log/checkpoint`` then carries every collected
cosignature line for the checkpoint it serves, after the log's own signature (signed-note:
a note may carry several signatures, and clients ignore those of keys they do not know).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assay.log import checkpoint, cosignature, note
from assay.storage.db import Database
from assay.storage.models import LogCheckpoint, LogCosignature, LogWitness, utcnow

#: A submission is one checkpoint and a few signature lines; anything bigger is not one.
MAX_SUBMISSION = 16 * 1024
DEFAULT_INDEX_ID = 1
#: Cosignature lines served per checkpoint: clients stop at 100 signatures (Go's note, ours),
#: so a checkpoint never carries so many that it stops verifying.
MAX_SERVED = 50


class WitnessError(ValueError):
    """A refused witness key or submission; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Witness:
    label: str
    vkey: str


def _verifier(vkey: str) -> cosignature.CosignatureVerifier:
    try:
        return cosignature.CosignatureVerifier.from_verifier_key(vkey.strip())
    except note.NoteError as exc:
        raise WitnessError(f"not a cosignature/v1 verifier key: {exc}") from None


def add(db: Database, label: str, vkey: str, index_id: int = DEFAULT_INDEX_ID) -> Witness:
    """Accept cosignatures by ``vkey`` (``<name>+<key ID>+<base64(0x04 || Ed25519 key)>``)."""
    if not label or len(label) > 100 or any(ch.isspace() for ch in label):
        raise WitnessError(f"{label!r} is not a witness label (1-100 characters, no spaces)")
    key = _verifier(vkey).verifier_key()
    with db.write() as session:
        clash = session.execute(
            sa.select(LogWitness).where(
                LogWitness.index_id == index_id, sa.or_(LogWitness.label == label, LogWitness.vkey == key)
            )
        ).scalar_one_or_none()
        if clash is not None:
            raise WitnessError(f"witness {clash.label!r} ({clash.vkey}) is configured already", 409)
        session.add(LogWitness(index_id=index_id, label=label, vkey=key, created=utcnow()))
    return Witness(label, key)


def remove(db: Database, label: str, index_id: int = DEFAULT_INDEX_ID) -> bool:
    """Stop accepting (and serving) the witness's cosignatures; False if there is none."""
    with db.write() as session:
        row = session.execute(
            sa.select(LogWitness).where(LogWitness.index_id == index_id, LogWitness.label == label)
        ).scalar_one_or_none()
        if row is None:
            return False
        session.execute(sa.delete(LogCosignature).where(LogCosignature.witness_id == row.id))
        session.delete(row)
    return True


def listed(db: Database, index_id: int = DEFAULT_INDEX_ID) -> list[Witness]:
    with db.read() as session:
        rows = session.execute(
            sa.select(LogWitness.label, LogWitness.vkey)
            .where(LogWitness.index_id == index_id)
            .order_by(LogWitness.label)
        ).all()
    return [Witness(label, vkey) for label, vkey in rows]


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def submit(db: Database, body: bytes, origin: str, index_id: int = DEFAULT_INDEX_ID) -> list[str]:
    """Store the cosignatures in ``body`` (a checkpoint note with the witness's signature
    lines) by configured witnesses; returns the names of the keys whose lines were stored.

    400: not a note or not a checkpoint of this log; 403: signed by no configured witness;
    422: a configured witness's signature fails, or the checkpoint is not one this log signed
    (another root at that size: a witness should never have cosigned it).
    """
    if len(body) > MAX_SUBMISSION:
        raise WitnessError(f"a cosigned checkpoint is at most {MAX_SUBMISSION} bytes", 413)
    try:
        text, sigs = note.parse(body)
        submitted = checkpoint.Checkpoint.parse(text)
    except (note.NoteError, checkpoint.CheckpointError) as exc:
        raise WitnessError(f"not a cosigned checkpoint (C2SP signed-note): {exc}") from None
    if submitted.origin != origin:
        raise WitnessError(f"the checkpoint is for log {submitted.origin!r}, this log is {origin!r}")
    with db.read() as session:
        rows = session.execute(
            sa.select(LogWitness.id, LogWitness.vkey).where(LogWitness.index_id == index_id)
        ).all()
        stored = session.get(LogCheckpoint, (index_id, submitted.size))
    by_key = {(v.name, v.key_id): (wid, v) for wid, vkey in rows if (v := _verifier(vkey))}
    try:
        opened = note.open_note(body, [v for _, v in by_key.values()])
    except note.InvalidSignatureError as exc:
        raise WitnessError(f"the cosignature does not verify: {exc}", 422) from None
    except note.UnverifiedNoteError:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in sigs) or "none"
        raise WitnessError(f"no signature by a witness this index accepts (signed by: {names})", 403) from None
    except note.NoteError as exc:
        raise WitnessError(f"not a cosigned checkpoint: {exc}") from None
    if stored is None or note.parse(stored.note)[0] != text:
        root = note.b64encode(submitted.root_hash)
        raise WitnessError(f"this log signed no checkpoint of size {submitted.size} with root {root}", 422)
    digest = _text_digest(text)
    accepted = []
    with db.write() as session:
        for sig in opened.verified:
            witness_id, _ = by_key[(sig.name, sig.key_id)]
            _store(session, index_id, submitted.size, witness_id, digest, sig)
            accepted.append(sig.name)
    return accepted


def _store(session: Session, index_id: int, size: int, witness_id: int, digest: str, sig: note.Signature) -> None:
    row = session.execute(
        sa.select(LogCosignature).where(
            LogCosignature.index_id == index_id, LogCosignature.size == size, LogCosignature.witness_id == witness_id
        )
    ).scalar_one_or_none()
    if row is None:
        session.add(LogCosignature(
            index_id=index_id, size=size, witness_id=witness_id, text_sha256=digest, line=sig.line(), created=utcnow()
        ))
        return
    old = note.parse(b"x\n\n" + row.line.encode())[1][0]
    # The newest statement wins: a witness re-cosigning says it saw this checkpoint later.
    if row.text_sha256 != digest or cosignature.timestamp_of(old.signature) <= cosignature.timestamp_of(sig.signature):
        row.text_sha256, row.line, row.created = digest, sig.line(), utcnow()


def attach(session: Session, signed: bytes, index_id: int = DEFAULT_INDEX_ID) -> bytes:
    """The signed checkpoint with the collected cosignature lines appended (those for its
    size and its very text, by witnesses still configured)."""
    text, _ = note.parse(signed)
    size = checkpoint.Checkpoint.parse(text).size
    lines = session.execute(
        sa.select(LogCosignature.line)
        .where(
            LogCosignature.index_id == index_id,
            LogCosignature.size == size,
            LogCosignature.text_sha256 == _text_digest(text),
        )
        .order_by(LogCosignature.id)
        .limit(MAX_SERVED)
    ).scalars().all()
    if not lines:
        return signed
    return signed + "".join(lines).encode()
