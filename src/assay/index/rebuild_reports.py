"""A file's rebuild reports as the index shows them (issue 14, item 4): in the Integrity API's
``/rebuilds`` answer and in the JSON API's file entries (``rebuilds``). Rows that
``assay.rebuilds`` recorded after verifying each report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assay.storage.models import RebuildAttestation, Rebuilder


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _entry(
    outcome: str, sha256: str, rebuilt: str, created: dt.datetime, issuer: str, identity: str, kind: str
) -> dict[str, Any]:
    return {
        "rebuilder": {"issuer": issuer, kind: identity},
        "outcome": outcome,
        "sha256": sha256,
        "rebuilt_sha256": rebuilt,
        "time": _iso(created),
    }


def entry(row: RebuildAttestation, rebuilder: Rebuilder, *, with_attestation: bool) -> dict[str, Any]:
    doc = _entry(
        row.outcome,
        row.sha256,
        row.rebuilt_sha256,
        row.created,
        rebuilder.issuer,
        rebuilder.identity,
        rebuilder.identity_kind,
    )
    if with_attestation:
        doc["attestation"] = row.attestation
    return doc


def of_files(
    session: Session, index_id: int, files: Iterable[tuple[str, str]], *, with_attestation: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Each file's reports (by filename), oldest first, for ``(filename, sha256)`` pairs: only a
    report on those exact bytes, by a rebuilder still registered (its rows go with it)."""
    wanted = dict(files)
    if not wanted:
        return {}
    rows = session.execute(
        sa.select(RebuildAttestation, Rebuilder)
        .join(Rebuilder, Rebuilder.id == RebuildAttestation.rebuilder_id)
        .where(RebuildAttestation.index_id == index_id, RebuildAttestation.filename.in_(list(wanted)))
        .order_by(RebuildAttestation.created, RebuildAttestation.id)
    ).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for row, rebuilder in rows:
        if wanted.get(row.filename) == row.sha256:
            out.setdefault(row.filename, []).append(entry(row, rebuilder, with_attestation=with_attestation))
    return out


def of_project(
    session: Session, project_id: int, files: Iterable[tuple[str, str]], *, version: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """``of_files`` for the JSON API: one indexed query by project (and release), the columns
    it shows only (never the attestations, a few KiB each), matched to the files in Python."""
    wanted = dict(files)
    if not wanted:
        return {}
    query = (
        sa.select(
            RebuildAttestation.filename,
            RebuildAttestation.outcome,
            RebuildAttestation.sha256,
            RebuildAttestation.rebuilt_sha256,
            RebuildAttestation.created,
            Rebuilder.issuer,
            Rebuilder.identity,
            Rebuilder.identity_kind,
        )
        .join(Rebuilder, Rebuilder.id == RebuildAttestation.rebuilder_id)
        .where(RebuildAttestation.project_id == project_id)
        .order_by(RebuildAttestation.created, RebuildAttestation.id)
    )
    if version is not None:
        query = query.where(RebuildAttestation.canonical_version == version)
    out: dict[str, list[dict[str, Any]]] = {}
    for filename, outcome, sha256, rebuilt, created, issuer, identity, kind in session.execute(query):
        if wanted.get(filename) == sha256:
            out.setdefault(filename, []).append(_entry(outcome, sha256, rebuilt, created, issuer, identity, kind))
    return out


def summary(filename: str, sha256: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The GET answer: "reproduced by N" (distinct rebuilders whose bytes matched), mismatches
    with both digests, every report."""
    return {
        "filename": filename,
        "sha256": sha256,
        "reproduced_by": sum(1 for r in reports if r["outcome"] == "match"),
        "mismatches": sum(1 for r in reports if r["outcome"] == "mismatch"),
        "rebuilds": reports,
    }
