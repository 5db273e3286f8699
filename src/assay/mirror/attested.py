"""PEP 740 provenance of mirrored files: fetched from upstream once, verified under the
index's trust root with ``assay verify``'s own checks and verdicts (``assay.verify.provenance``,
``assay.verify.verdicts``), results cached in the database by (file sha256, provenance digest,
pin, trust root), and trust-on-first-use pins recorded once, never changed.

The provenance's ``publisher`` block is upstream-asserted and unsigned (PEP 740), so, as in
``assay verify``, it only ever proposes a pin (TOFU); the certificates decide.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import httpx
import sqlalchemy as sa
import tomli_w
from packaging.utils import NormalizedName, canonicalize_name
from sqlalchemy.exc import IntegrityError

from assay import mediatypes
from assay.attestations.trust import TrustRoot, read_trust_root
from assay.mirror.upstream import UpstreamFile
from assay.storage.db import Database
from assay.storage.models import MirrorPin, MirrorProvenance, MirrorVerification
from assay.verify.errors import InputError
from assay.verify.files import LockedFile
from assay.verify.pins import Pin, PinFile, pin_fields
from assay.verify.provenance import check_provenance
from assay.verify.verdicts import Verdict, attesting_identity, judge

#: The largest provenance object taken from upstream (PyPI's are a few KiB per attestation).
MAX_PROVENANCE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Evidence:
    """What a file's provenance amounts to."""

    #: "none": upstream has none; "unavailable": it could not be fetched; "checked".
    state: Literal["none", "unavailable", "checked"]
    #: Every attestation verified (cryptography, subject name and sha256).
    sound: bool = False
    #: ``assay verify``'s verdict against the pin (``verified``, ``identity-changed``,
    #: ``unpinned``, ``invalid``), when checked.
    verdict: str | None = None
    #: The identity the certificates confirm, as a pin table (what TOFU records).
    proposal: dict[str, str] | None = None
    detail: str = ""


def _pin_tables(pin: Pin | None) -> list[dict[str, str]] | None:
    return [pin_fields(m) for m in pin.matchers] if pin is not None else None


def verification_key(file_sha256: str, provenance_digest: str, pin: Pin | None, trust: TrustRoot) -> str:
    material = json.dumps([file_sha256, provenance_digest, _pin_tables(pin), trust.digest], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


class Attestations:
    def __init__(self, db: Database, client: httpx.AsyncClient, trust_root: str, *, workers: int = 4) -> None:
        self.db = db
        self.client = client
        self.trust_spec = trust_root
        self._trust: TrustRoot | None = None
        # Verification is CPU-bound (sigstore, cryptography): a few threads, not one per file.
        self.limiter = anyio.CapacityLimiter(workers)
        #: Checks run (not answered from the cache) by this instance: the benchmark reads it.
        self.checks_run = 0

    @property
    def trust(self) -> TrustRoot:
        if self._trust is None:
            self._trust = read_trust_root(self.trust_spec)
        return self._trust

    # ---- provenance bytes -------------------------------------------------------------------

    def _kept(self, index_id: int, filename: str, sha256: str) -> MirrorProvenance | None:
        with self.db.read() as session:
            return session.execute(
                sa.select(MirrorProvenance).where(
                    MirrorProvenance.index_id == index_id,
                    MirrorProvenance.filename == filename,
                    MirrorProvenance.file_sha256 == sha256,
                )
            ).scalar_one_or_none()

    def _keep(self, index_id: int, filename: str, sha256: str, url: str, body: bytes | None) -> None:
        digest = hashlib.sha256(body).hexdigest() if body is not None else None
        try:
            with self.db.write() as session:
                session.add(
                    MirrorProvenance(
                        index_id=index_id, filename=filename, file_sha256=sha256, url=url, body=body, digest=digest
                    )
                )
        except IntegrityError:
            pass  # another worker kept it first: the same upstream answer

    async def provenance(self, index_id: int, entry: UpstreamFile, sha256: str) -> bytes | None:
        """The provenance object's bytes (None: upstream has none). Kept after the first fetch;
        ``httpx.HTTPError`` or ``ValueError`` when upstream cannot say."""
        if entry.provenance is None:
            return None
        kept = await anyio.to_thread.run_sync(self._kept, index_id, entry.filename, sha256)
        if kept is not None:
            return kept.body
        headers = {"Accept": mediatypes.INTEGRITY_ACCEPT}
        async with self.client.stream("GET", entry.provenance, headers=headers, follow_redirects=True) as response:
            if response.status_code == 404:
                # PyPI's Integrity API: 404 "No provenance available" for an unattested file.
                body = None
            elif response.status_code != 200:
                raise ValueError(f"upstream answered {response.status_code} for the provenance of {entry.filename}")
            else:
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_PROVENANCE_BYTES:
                        raise ValueError(f"the provenance of {entry.filename} is larger than {MAX_PROVENANCE_BYTES}")
                    chunks.append(chunk)
                body = b"".join(chunks)
        await anyio.to_thread.run_sync(self._keep, index_id, entry.filename, sha256, entry.provenance, body)
        return body

    def stored_provenance(self, index_id: int, filename: str) -> bytes | None:
        """The kept provenance of a file (what the Integrity route re-serves), newest first."""
        with self.db.read() as session:
            return session.execute(
                sa.select(MirrorProvenance.body)
                .where(MirrorProvenance.index_id == index_id, MirrorProvenance.filename == filename)
                .order_by(MirrorProvenance.id.desc())
                .limit(1)
            ).scalar_one_or_none()

    # ---- pins ----------------------------------------------------------------------------------

    def tofu_pin(self, index_id: int, project: NormalizedName) -> Pin | None:
        with self.db.read() as session:
            row = session.get(MirrorPin, (index_id, project))
            if row is None:
                return None
            table, filename = dict(row.pin), row.filename
        # Read back with the .provenance.toml reader itself: one definition of a pin table.
        try:
            pins = PinFile.parse(Path("mirror_pins"), tomli_w.dumps({"packages": {project: table}})).pins
        except InputError:
            return None  # pragma: no cover - only ever written from pin_fields
        pin = pins.get(project)
        return Pin(pin.matchers, source=f"TOFU pin from {filename}") if pin else None

    def record_tofu(self, index_id: int, project: NormalizedName, table: dict[str, str], filename: str) -> bool:
        """Record a pin for a project that has none; False when one exists (it stays)."""
        try:
            with self.db.write() as session:
                if session.get(MirrorPin, (index_id, project)) is not None:
                    return False
                session.add(MirrorPin(index_id=index_id, project=project, pin=table, filename=filename))
        except IntegrityError:
            return False  # another worker recorded one first: theirs stands
        return True

    # ---- verification --------------------------------------------------------------------------

    def _cached(self, key: str) -> MirrorVerification | None:
        with self.db.read() as session:
            return session.get(MirrorVerification, key)

    def _store(self, key: str, sha256: str, evidence: Evidence) -> None:
        try:
            with self.db.write() as session:
                session.add(
                    MirrorVerification(
                        key=key,
                        file_sha256=sha256,
                        sound=evidence.sound,
                        pinned=evidence.verdict == Verdict.VERIFIED,
                        publishers=[evidence.proposal] if evidence.proposal else [],
                        detail=f"{evidence.verdict}: {evidence.detail}",
                    )
                )
        except IntegrityError:
            pass  # the same check, stored by another worker

    def _check(self, body: bytes, project: str, filename: str, sha256: str, pin: Pin | None) -> Evidence:
        expected = pin.matchers if pin is not None else ()
        check = check_provenance(body, filename=filename, sha256=sha256, expected=expected, trust=self.trust)
        locked = LockedFile(canonicalize_name(project), None, filename, sha256, None)
        result = judge(locked, check, pin, expected=expected)
        proposal = attesting_identity(check)
        return Evidence(
            "checked",
            sound=check.sound,
            verdict=str(result.verdict),
            proposal=pin_fields(proposal) if proposal is not None else None,
            detail=result.reason,
        )

    async def evidence(self, body: bytes, project: str, filename: str, sha256: str, pin: Pin | None) -> Evidence:
        key = verification_key(sha256, hashlib.sha256(body).hexdigest(), pin, self.trust)
        cached = await anyio.to_thread.run_sync(self._cached, key)
        if cached is not None:
            verdict, _, detail = cached.detail.partition(": ")
            return Evidence(
                "checked",
                sound=cached.sound,
                verdict=verdict,
                proposal=cached.publishers[0] if cached.publishers else None,
                detail=detail,
            )
        evidence = await anyio.to_thread.run_sync(
            self._check, body, project, filename, sha256, pin, limiter=self.limiter
        )
        self.checks_run += 1
        await anyio.to_thread.run_sync(self._store, key, sha256, evidence)
        return evidence
