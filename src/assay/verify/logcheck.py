"""Checking files against the index's own transparency log (issue 13, docs/log-format.md "Clients").

Per file whose index offers a receipt (the PEP 691 page's ``_assay_log_receipt``), or of an
index whose log key is pinned: the receipt (a C2SP tlog-proof, cached beside the provenance
so ``--offline`` works) must log exactly this file (its ``extra`` entry names the filename and
the lock's sha256, else ``log-mismatch``), prove its inclusion under its checkpoint (else
``log-mismatch``), and that checkpoint must be signed by the pinned log key for the log's
origin (else ``log-fork``: a checkpoint signed by another key is evidence of another log).

Across runs, as Go's ``sumdb`` client does, the largest checkpoint seen per origin is kept in
the state directory. Online, the log's current checkpoint must extend it (a consistency proof
computed from the log's C2SP tlog-tiles, checked against both roots), and every receipt's
checkpoint must be a prefix of the current one; a rollback (a smaller current tree) or a
proof that fails is ``log-fork`` for every file of that index. Offline, no tiles are
fetched: receipts are checked from the cache, and a receipt whose checkpoint has the stored
size must have the stored root.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import platformdirs

from assay.log import cosignature, merkle, note, proof, tiles
from assay.log.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from assay.verify.cache import DiskCache
from assay.verify.errors import FetchError, InputError
from assay.verify.files import LockedFile
from assay.verify.pins import write_atomically
from assay.verify.simple import ProjectPage
from assay.verify.verdicts import Verdict

if TYPE_CHECKING:
    from assay.verify.fetch import Http  # httpx, which an --offline run never imports

#: Receipts and checkpoints are small; a tile is at most 256 hashes.
MAX_RECEIPT = 1 << 20
MAX_TILE = 256 * merkle.HASH_SIZE


def default_state_dir() -> Path:
    """``assay/log`` under the user's state directory (where the memo key lives, not the cache:
    the stored checkpoint is what a rollback is detected against, so clearing caches must not
    forget it)."""
    return Path(platformdirs.user_state_dir("assay", appauthor=False)) / "log"


def log_base(index_url: str) -> str:
    """The log's URL prefix for an index at ``{base}/simple/`` (assay's layout): ``{base}/``."""
    return urljoin(index_url if index_url.endswith("/") else index_url + "/", "../")


@dataclass(frozen=True)
class Problem:
    verdict: Verdict
    reason: str


@dataclass
class IndexLog:
    """One index's log as this run sees it."""

    index: str
    key: str
    origin: str
    verifier: note.Ed25519Verifier
    #: The checkpoints of the receipts that verified, to be checked against the current one.
    seen: list[Checkpoint] = field(default_factory=list)
    fork: str | None = None
    #: Per file position, its receipt's signed checkpoint (cosignatures included), verbatim.
    seen_notes: dict[int, bytes] = field(default_factory=dict)
    #: Online: the log's current checkpoint as served (with the cosignatures it collected).
    current_note: bytes | None = None
    #: Signed checkpoints already verified in this run (most receipts share one): their
    #: signature is checked once, not once per file.
    opened: dict[bytes, Checkpoint] = field(default_factory=dict)


def check_receipt(
    data: bytes, file: LockedFile, log: IndexLog, position: int | None = None
) -> tuple[Checkpoint | None, Problem | None]:
    """The receipt's checkpoint, or what is wrong with the receipt for ``file``; a sound
    receipt's signed checkpoint is kept in ``log.seen_notes[position]`` (for witnesses)."""
    try:
        receipt = proof.TlogProof.parse(data)
    except proof.TlogProofError as exc:
        return None, Problem(Verdict.LOG_MISMATCH, f"the log receipt is malformed: {exc}")
    if receipt.extra is None:
        return None, Problem(Verdict.LOG_MISMATCH, "the log receipt carries no entry (no extra line)")
    try:
        entry = json.loads(receipt.extra)
    except ValueError:
        return None, Problem(Verdict.LOG_MISMATCH, "the log receipt's entry is not JSON")
    if not isinstance(entry, dict) or entry.get("filename") != file.filename or entry.get("sha256") != file.sha256:
        got = (entry.get("filename"), entry.get("sha256")) if isinstance(entry, dict) else None
        return None, Problem(
            Verdict.LOG_MISMATCH,
            f"the log records {got!r}, not {file.filename} with sha256 {file.sha256}",
        )
    checkpoint = log.opened.get(receipt.checkpoint)
    if checkpoint is None:
        try:
            checkpoint, _ = open_checkpoint(receipt.checkpoint, [log.verifier], log.origin)
        except (note.NoteError, CheckpointError) as exc:
            return None, Problem(Verdict.LOG_FORK, f"the receipt's checkpoint is not the pinned log's: {exc}")
        log.opened[receipt.checkpoint] = checkpoint
    try:
        # What TlogProof.verify checks after the signature (RFC 9162 §2.1.3.2).
        merkle.verify_inclusion(
            merkle.leaf_hash(receipt.extra), receipt.index, checkpoint.size, receipt.hashes, checkpoint.root_hash
        )
    except merkle.ProofError as exc:
        return None, Problem(Verdict.LOG_MISMATCH, f"the log receipt does not prove its entry: {exc}")
    if position is not None:
        log.seen_notes[position] = receipt.checkpoint
    return checkpoint, None


class CheckpointState:
    """The largest checkpoint seen per log origin: ``<state>/<sha256(origin)>.checkpoint``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, origin: str) -> Path:
        return self.root / (hashlib.sha256(origin.encode()).hexdigest()[:32] + ".checkpoint")

    def get(self, origin: str) -> Checkpoint | None:
        try:
            checkpoint = Checkpoint.parse(self._path(origin).read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError, CheckpointError):
            return None
        return checkpoint if checkpoint.origin == origin else None

    def put(self, checkpoint: Checkpoint) -> None:
        write_atomically(self._path(checkpoint.origin), checkpoint.text())


def _consistent(old: Checkpoint, new: Checkpoint, read: merkle.HashReader) -> str | None:
    """None when ``old`` is a prefix of ``new`` (RFC 9162 §2.1.4), else why not."""
    if old.size > new.size:
        return f"the log's tree shrank from {old.size} to {new.size} entries (a rollback)"
    try:
        merkle.verify_consistency(
            old.size, new.size, old.root_hash, new.root_hash, merkle.consistency_proof(old.size, new.size, read)
        )
    except (merkle.ProofError, tiles.TileError) as exc:
        return f"the checkpoint of size {old.size} is not a prefix of the one of size {new.size}: {exc}"
    return None


def check_consistency(log: IndexLog, state: CheckpointState, http: Http | None) -> str | None:
    """Compare this run's checkpoints with the stored one (and, online, the log's current
    one); store the newest. Returns a note when the check was partial (offline)."""
    stored = state.get(log.origin)
    if http is None:
        for seen in log.seen:
            if stored is not None and seen.size == stored.size and seen.root_hash != stored.root_hash:
                log.fork = f"a receipt's checkpoint of size {seen.size} differs from the one seen before"
        return f"offline: log {log.origin} checked from cached receipts only, without consistency proofs"
    base = log_base(log.index)
    try:
        got = http.get(urljoin(base, "log/checkpoint"), accept="text/plain", limit=MAX_RECEIPT)
        if got.status != 200:
            raise FetchError(f"HTTP {got.status}")
        current, _ = open_checkpoint(got.body, [log.verifier], log.origin)
        log.current_note = got.body
    except (FetchError, note.NoteError, CheckpointError) as exc:
        log.fork = f"the log's current checkpoint cannot be checked: {exc}"
        return None

    def fetch(tile: tiles.Tile) -> bytes:
        answer = http.get(urljoin(base, "log/" + tile.path()), accept="application/octet-stream", limit=MAX_TILE)
        if answer.status != 200:
            raise tiles.TileError(f"{tile.path()}: HTTP {answer.status}")
        return answer.body

    read = tiles.tile_hash_reader(current.size, fetch, root=current.root_hash)
    for old in ([stored] if stored is not None else []) + log.seen:
        try:
            problem = _consistent(old, current, read)
        except FetchError as exc:
            problem = f"the log's tiles cannot be read: {exc}"
        if problem is not None:
            log.fork = problem
            return None
    try:
        state.put(current)
    except OSError as exc:  # the check itself passed; only the next run's baseline is lost
        return f"the log checkpoint of {log.origin} cannot be kept in {state.root}: {exc}"
    return None


def receipt_for(
    file: LockedFile, page: ProjectPage | None, cache: DiskCache, http: Http | None
) -> tuple[bytes | None, bool]:
    """The file's receipt (fetched and cached online, from the cache offline), and whether
    the index offers receipts for it at all."""
    assert file.sha256 is not None
    listed = page.by_filename(file.filename) if page is not None and file.filename else None
    url = listed.log_receipt if listed is not None else None
    if http is None or url is None:
        return cache.receipt(file.sha256), url is not None
    try:
        got = http.get(url, accept="text/plain", limit=MAX_RECEIPT)
    except FetchError:
        return cache.receipt(file.sha256), True
    if got.status != 200:
        return None, True
    cache.store_receipt(file.sha256, got.body)
    return got.body, True


def offers_log(pages: Sequence[ProjectPage]) -> bool:
    return any(f.log_receipt for page in pages for f in page.files)


# ---- witnesses (issue 13 item 5: --require-witnesses K) ------------------------------------


def witness_verifiers(keys: Sequence[str], *, where: str) -> list[cosignature.CosignatureVerifier]:
    """The pinned witness keys (cosignature/v1 verifier keys), each once."""
    found: dict[tuple[str, int], cosignature.CosignatureVerifier] = {}
    for key in keys:
        try:
            verifier = cosignature.CosignatureVerifier.from_verifier_key(key.strip())
        except note.NoteError as exc:
            raise InputError(f"{where}: {key[:80]!r} is not a witness verifier key: {exc}") from None
        found.setdefault((verifier.name, verifier.key_id), verifier)
    return list(found.values())


def count_cosignatures(signed: bytes, verifiers: Sequence[cosignature.CosignatureVerifier]) -> int:
    """How many of ``verifiers`` validly cosigned this checkpoint note (C2SP tlog-cosignature:
    a cosignature/v1 line over the note's text). A pinned key's failing line does not count;
    lines of other keys are ignored (signed-note)."""
    try:
        text, sigs = note.parse(signed)
    except note.NoteError:
        return 0
    known = {(v.name, v.key_id): v for v in verifiers}
    valid: set[tuple[str, int]] = set()
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is not None and verifier.verify(text.encode(), sig.signature):
            valid.add((sig.name, sig.key_id))
    return len(valid)


def check_witnesses(
    log: IndexLog, verifiers: Sequence[cosignature.CosignatureVerifier], required: int
) -> dict[int, str]:
    """What falls short of ``required`` cosignatures: key -1 for every file (online, the log's
    current checkpoint, which every receipt's checkpoint was proven a prefix of), or per file
    position (offline: each receipt's own checkpoint)."""
    if len(verifiers) < required:
        return {-1: (
            f"--require-witnesses {required}, but {len(verifiers)} witness key(s) are pinned for {log.index} "
            f"(witnesses = [...] in [log.\"{log.index}\"] of the pins file, or --witness-key)"
        )}
    if log.current_note is not None:
        got = count_cosignatures(log.current_note, verifiers)
        if got < required:
            return {-1: f"the log's checkpoint carries {got} valid cosignature(s) by pinned witnesses, "
                        f"{required} required"}
        return {}
    short = {}
    for position, signed in log.seen_notes.items():
        got = count_cosignatures(signed, verifiers)
        if got < required:
            short[position] = (
                f"offline: the receipt's checkpoint carries {got} valid cosignature(s) by pinned witnesses, "
                f"{required} required"
            )
    return short
