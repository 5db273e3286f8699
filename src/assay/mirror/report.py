"""An index's policy, kept in the database, and what it decided (``assay admin policy set``,
``policy show``, ``policy report``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from assay import audit
from assay.mirror.policy import Policy, empty_policy, parse_policy
from assay.storage.changes import CHANNEL
from assay.storage.db import Database
from assay.storage.models import MirrorConflict, MirrorDecision, MirrorPin, MirrorPolicy, utcnow


def set_policy(db: Database, index_id: int, policy: Policy, *, actor: str) -> None:
    with db.write() as session:
        row = session.get(MirrorPolicy, index_id)
        if row is None:
            row = MirrorPolicy(index_id=index_id, text=policy.text, pins_text=policy.pins_text, source=policy.source)
            session.add(row)
        else:
            row.text, row.pins_text, row.source, row.updated = policy.text, policy.pins_text, policy.source, utcnow()
        if session.get_bind().dialect.name == "postgresql":
            # Servers keep the pages they decided until the database changes (on PostgreSQL:
            # a NOTIFY on the change channel, sent at this commit; a payload that names no
            # project makes them drop everything they keep: assay.index.serials), so a new
            # policy shows on every server at once.
            session.execute(sa.select(sa.func.pg_notify(CHANNEL, f"mirror-policy {index_id}")))
        audit.record(
            session,
            actor=actor,
            action="policy:set",
            target=policy.source,
            details={"index_id": index_id, "digest": policy.digest},
        )


_parsed: dict[tuple[str, str | None], Policy] = {}


def get_policy(db: Database, index_id: int) -> Policy:
    """The index's policy (an empty one when none is set). Parsed once per text per process;
    read from the database each call, so ``policy set`` reaches every worker at once."""
    with db.read() as session:
        row = session.get(MirrorPolicy, index_id)
        if row is None:
            return empty_policy()
        key = (row.text, row.pins_text)
        source = row.source
    policy = _parsed.get(key)
    if policy is None:
        # It was checked when set; parsing it again can only fail if the code changed.
        policy = parse_policy(key[0], key[1], source=source)
        _parsed[key] = policy
    return policy


@dataclass(frozen=True)
class ReportEntry:
    project: str
    filename: str
    sha256: str
    #: A hiding reason (assay.mirror.decide.REASONS) or "hash-changed".
    reason: str
    detail: str
    since: dt.datetime
    #: Whether this is still the file's latest decision (a file aged out of the cooldown
    #: keeps its earlier "cooldown" row, marked not current).
    current: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"since": self.since.isoformat()}


def report(db: Database, index_id: int) -> list[ReportEntry]:
    """Every file the index's policy hid, and every hash upstream changed under a kept name."""
    with db.read() as session:
        decisions = list(
            session.execute(
                sa.select(MirrorDecision)
                .where(MirrorDecision.index_id == index_id)
                .order_by(MirrorDecision.decided, MirrorDecision.id)
            ).scalars()
        )
        conflicts = list(
            session.execute(
                sa.select(MirrorConflict)
                .where(MirrorConflict.index_id == index_id)
                .order_by(MirrorConflict.first_seen, MirrorConflict.id)
            ).scalars()
        )
    latest: dict[tuple[str, str], int] = {}
    for d in decisions:
        latest[(d.filename, d.sha256)] = d.id
    entries = [
        ReportEntry(
            d.project, d.filename, d.sha256, d.outcome, d.detail, d.decided, latest[(d.filename, d.sha256)] == d.id
        )
        for d in decisions
        if d.outcome != "visible"
    ]
    entries += [
        ReportEntry(
            c.project,
            c.filename,
            c.offered_sha256,
            "hash-changed",
            f"upstream now lists sha256 {c.offered_sha256}; the kept file ({c.kept_sha256}) is served",
            c.first_seen,
            True,
        )
        for c in conflicts
    ]
    return sorted(entries, key=lambda e: (e.since, e.project, e.filename))


@dataclass(frozen=True)
class TofuPin:
    project: str
    pin: dict[str, str]
    #: The file whose verified provenance it was taken from.
    filename: str
    created: dt.datetime


def tofu_pins(db: Database, index_id: int) -> list[TofuPin]:
    """The pins recorded trust-on-first-use (``tofu = true``), by project."""
    with db.read() as session:
        rows = session.execute(
            sa.select(MirrorPin).where(MirrorPin.index_id == index_id).order_by(MirrorPin.project)
        ).scalars()
        return [TofuPin(r.project, dict(r.pin), r.filename, r.created) for r in rows]
