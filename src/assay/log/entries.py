"""What a log entry says: one small JSON object per change, in its one canonical spelling.

An entry is the bytes the Merkle tree hashes (RFC 6962 leaf), so it must have exactly one
spelling: JSON canonicalised by RFC 8785 (JCS: sorted keys, no whitespace, ECMAScript number
and string forms), via the ``rfc8785`` package. Every entry carries ``v`` (the format version,
1), ``kind``, ``index`` (the index's name: an entry cannot be replayed into another index's
log) and ``time`` (RFC 3339, UTC, microseconds, ``Z``). The kinds and their other fields:

- ``upload``: project, version, filename, sha256, size, and who: ``publisher`` (the Trusted
  Publisher's identity block, as in PEP 740 provenance) or ``token`` (the API token's id), and
  ``provenance_sha256``, SHA-256 of the JCS form of the file's PEP 740 provenance (or null);
  ``time`` is the file's upload time;
- ``yank`` / ``unyank`` (PEP 592): project, version, reason;
- ``status`` (PEP 792): project, status, reason;
- ``remove``: project, version, filename, sha256 (one entry per file removed, whichever
  command removed it, so an entry stays small);
- ``provenance-import``: project, filename, sha256, provenance_sha256 (the merged provenance);
- ``approval`` (issue 14): project, version, stage, approvers and triggered_by (sorted lists),
  files (``{filename, sha256}`` each, sorted by filename) and statement_sha256, SHA-256 of the
  signed approval statement's bytes (the note ``/_/releases/…/approvals`` serves), or null.
  Written after the stage's ``upload`` entries, in the approval's transaction.

C2SP tlog-tiles entry bundles prefix entries with a uint16 length, so an entry is at most
65,535 bytes; free text (reasons) is cut to ``MAX_REASON`` characters to stay far below.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import rfc8785

from assay.log.tiles import MAX_ENTRY_SIZE

VERSION = 1
KINDS = ("upload", "yank", "unyank", "status", "remove", "provenance-import", "approval")
#: Today a server has one index, the default one (named indexes: a later issue).
DEFAULT_INDEX = "default"
MAX_REASON = 2000


class EntryError(ValueError):
    """An entry that cannot be logged (unknown kind, too large)."""


def timestamp(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise EntryError("log entry times must be timezone-aware")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode(entry: dict[str, Any]) -> bytes:
    """The entry's canonical bytes (RFC 8785), checked to fit an entry bundle."""
    if entry.get("kind") not in KINDS:
        raise EntryError(f"unknown log entry kind {entry.get('kind')!r}")
    data = rfc8785.dumps(entry)
    if len(data) > MAX_ENTRY_SIZE:
        raise EntryError(f"a log entry of {len(data)} bytes exceeds {MAX_ENTRY_SIZE} (tlog-tiles uint16 length)")
    return data


def provenance_digest(provenance: dict[str, Any] | None) -> str | None:
    """SHA-256 of the provenance object's JCS form: what a client recomputes from the
    Integrity API's answer, whatever whitespace or key order it came in."""
    if provenance is None:
        return None
    return hashlib.sha256(rfc8785.dumps(provenance)).hexdigest()


def _reason(reason: str | None) -> str | None:
    return reason[:MAX_REASON] if reason else None


def _base(kind: str, when: dt.datetime, index: str) -> dict[str, Any]:
    return {"v": VERSION, "kind": kind, "index": index, "time": timestamp(when)}


def upload(
    *,
    project: str,
    version: str,
    filename: str,
    sha256: str,
    size: int,
    upload_time: dt.datetime,
    publisher: dict[str, Any] | None,
    token: str | None,
    provenance: dict[str, Any] | None,
    index: str = DEFAULT_INDEX,
) -> dict[str, Any]:
    entry = _base("upload", upload_time, index)
    entry.update(project=project, version=version, filename=filename, sha256=sha256, size=size)
    if publisher is not None:
        entry["publisher"] = publisher
    else:
        entry["token"] = token
    entry["provenance_sha256"] = provenance_digest(provenance)
    return entry


def yank(project: str, version: str, reason: str | None, *, yanked: bool, when: dt.datetime,
         index: str = DEFAULT_INDEX) -> dict[str, Any]:
    entry = _base("yank" if yanked else "unyank", when, index)
    entry.update(project=project, version=version, reason=_reason(reason))
    return entry


def status(project: str, new_status: str, reason: str | None, *, when: dt.datetime,
           index: str = DEFAULT_INDEX) -> dict[str, Any]:
    entry = _base("status", when, index)
    entry.update(project=project, status=new_status, reason=_reason(reason))
    return entry


def remove(project: str, version: str, filename: str, sha256: str, *, when: dt.datetime,
           index: str = DEFAULT_INDEX) -> dict[str, Any]:
    entry = _base("remove", when, index)
    entry.update(project=project, version=version, filename=filename, sha256=sha256)
    return entry


def provenance_import(project: str, filename: str, sha256: str, provenance: dict[str, Any] | None, *,
                      when: dt.datetime, index: str = DEFAULT_INDEX) -> dict[str, Any]:
    entry = _base("provenance-import", when, index)
    entry.update(project=project, filename=filename, sha256=sha256,
                 provenance_sha256=provenance_digest(provenance))
    return entry


def approval(project: str, version: str, stage: str, *, approvers: list[str], triggered_by: list[str],
             files: dict[str, str], statement: bytes | None, when: dt.datetime,
             index: str = DEFAULT_INDEX) -> dict[str, Any]:
    """A stage gone live: who approved it, who triggered its uploads, its files (filename to
    sha256) and the digest of the index's signed statement, so the log vouches for the
    statement a client is shown (and a statement the log does not hold is suspect)."""
    entry = _base("approval", when, index)
    entry.update(
        project=project, version=version, stage=stage, approvers=sorted(approvers),
        triggered_by=sorted(triggered_by),
        files=[{"filename": name, "sha256": files[name]} for name in sorted(files)],
        statement_sha256=hashlib.sha256(statement).hexdigest() if statement is not None else None,
    )
    return entry


def decode(data: bytes) -> dict[str, Any]:
    """An entry read back from a log (a monitor's replay): JSON, depth-guarded, an object of
    this format's version and a known kind, in its one canonical spelling (anything else was
    not written by an assay index, or was altered)."""
    from assay import untrusted_json

    try:
        entry = untrusted_json.loads(data)
    except ValueError as exc:  # JSONDecodeError, JSONTooDeep, UnicodeDecodeError
        raise EntryError(f"a log entry is not JSON: {exc}") from None
    if not isinstance(entry, dict):
        raise EntryError("a log entry is a JSON object")
    if entry.get("v") != VERSION or entry.get("kind") not in KINDS:
        got = f"v={entry.get('v')!r}, kind={entry.get('kind')!r}"
        raise EntryError(f"not a version {VERSION} entry of a known kind ({got})")
    if rfc8785.dumps(entry) != data:
        raise EntryError("a log entry is not in its canonical (RFC 8785) spelling")
    return entry
