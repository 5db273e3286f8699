"""Which upstream files an index shows, and why the others are hidden (issue 12, item 3).

The checks, in order (the first that hides a file names the reason):

1. the project lists (``[projects] allow`` / ``deny``): ``denied``;
2. the file has no sha256 on upstream's page (it could not be checked before serving):
   ``no-sha256``;
3. the cooldown (``min-age``, from upstream's PEP 700 ``upload-time``): ``cooldown``; a file
   without an upload time is hidden whenever a cooldown applies (fail closed):
   ``no-upload-time``;
4. provenance (``require``): ``unattested`` (none), ``provenance-unavailable`` (upstream could
   not say), ``invalid`` (it does not verify), and under ``pinned`` ``unpinned`` /
   ``identity-changed`` (``assay verify``'s verdicts);
5. lost provenance (``block-lost``): a release without sound provenance after a release with
   it: ``lost-provenance`` (Warehouse's "lost provenance" state, enforced).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from assay.mirror.attested import Evidence
from assay.mirror.policy import Rules
from assay.mirror.upstream import UpstreamFile

REASONS = (
    "denied",
    "no-sha256",
    "cooldown",
    "no-upload-time",
    "unattested",
    "provenance-unavailable",
    "invalid",
    "unpinned",
    "identity-changed",
    "lost-provenance",
)


@dataclass(frozen=True)
class Decision:
    filename: str
    #: The sha256 the decision is about (the kept file's, else upstream's); "" when none.
    sha256: str
    #: None: visible; else one of ``REASONS``.
    reason: str | None
    detail: str = ""

    @property
    def visible(self) -> bool:
        return self.reason is None

    @property
    def outcome(self) -> str:
        return self.reason or "visible"


def file_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _age(upload_time: dt.datetime, now: dt.datetime) -> str:
    hours = (now - upload_time).total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _provenance_reason(rules: Rules, evidence: Evidence | None) -> tuple[str, str] | None:
    if rules.require == "none":
        return None
    if evidence is None or evidence.state == "none":
        return "unattested", f'the policy requires provenance ("{rules.require}"); upstream has none for this file'
    if evidence.state == "unavailable":
        return "provenance-unavailable", f"upstream's provenance could not be fetched: {evidence.detail}"
    if not evidence.sound:
        return "invalid", f"the provenance does not verify: {evidence.detail}"
    if rules.require == "pinned" and evidence.verdict != "verified":
        return evidence.verdict or "unpinned", evidence.detail
    return None


def decide(
    files: Sequence[UpstreamFile],
    shas: Mapping[str, str | None],
    rules: Rules,
    evidence: Mapping[str, Evidence],
    now: dt.datetime,
) -> list[Decision]:
    """A decision per file. ``shas``: the sha256 to serve each file under (the kept one when
    a file is held already); ``evidence``: per filename, when provenance was looked at."""
    lost: set[Version] = set()
    if rules.block_lost:
        attested: dict[Version, bool] = {}
        for f in files:
            version = file_version(f.filename)
            if version is not None:
                ev = evidence.get(f.filename)
                attested[version] = attested.get(version, False) or bool(ev and ev.sound)
        seen = False
        for version in sorted(attested):
            if attested[version]:
                seen = True
            elif seen:
                lost.add(version)
    decisions = []
    for f in files:
        sha = shas.get(f.filename) or ""

        def hidden(reason: str, detail: str, f: UpstreamFile = f, sha: str = sha) -> Decision:
            return Decision(f.filename, sha, reason, detail)

        if rules.listed_out:
            decisions.append(hidden("denied", f"the project is {rules.listed_out}"))
            continue
        if not sha:
            decisions.append(hidden("no-sha256", "upstream lists no sha256 for this file"))
            continue
        if rules.min_age is not None:
            if f.upload_time is None:
                decisions.append(hidden("no-upload-time", "a cooldown applies and upstream gives no upload-time"))
                continue
            if now - f.upload_time < rules.min_age:
                decisions.append(
                    hidden(
                        "cooldown",
                        f"uploaded {_age(f.upload_time, now)} ago, the policy's min-age is {rules.min_age}; "
                        f"visible from {(f.upload_time + rules.min_age).isoformat()}",
                    )
                )
                continue
        problem = _provenance_reason(rules, evidence.get(f.filename))
        if problem is not None:
            decisions.append(hidden(*problem))
            continue
        version = file_version(f.filename)
        if version is not None and version in lost:
            decisions.append(
                hidden("lost-provenance", f"an earlier release was attested and {version} has no sound provenance")
            )
            continue
        decisions.append(Decision(f.filename, sha, None))
    return decisions
