"""``assay log monitor``: replay an index's log incrementally and report what should alarm.

Each run fetches the checkpoint (verified with the log's key), checks it extends the one the
last run ended at (a consistency proof from the tiles; else a ``log-fork`` or ``log-rollback``
finding and no replay), then reads only the entries after the last one it processed, from
``tile/entries/`` (each checked against the signed tree), parses each (``entries.decode``)
and reports, one finding per entry:

- ``filename-reused``: an ``upload`` of a filename logged before with another sha256 (PyPI
  never lets a filename be reused, even after a removal: its bytes must never change);
- ``publisher-changed``: an ``upload`` by a Trusted Publisher whose identity differs from the
  one the project's last publisher upload named (token uploads name no publisher and do not
  count; they show up as ``provenance-lost`` when the project was attested);
- ``provenance-lost``: an ``upload`` without provenance for a project that had uploads with
  provenance (or a provenance import) before;
- ``file-removed``: a ``remove`` entry.

The state (``<state>/<sha256(log prefix)>.json``: the key pinned on first use, the last
checkpoint, how many entries were processed, and per filename its sha256, per project its
publisher and whether it was attested) is written atomically after each run, so a restarted
monitor resumes after the last entry it processed and never reports an entry twice (a crash
between printing and saving reports that run's findings again: at least once).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import rfc8785

from assay.log import entries
from assay.log.checkpoint import Checkpoint, CheckpointError
from assay.logclient.remote import LogProblem, Problem, RemoteLog
from assay.verify.pins import write_atomically

STATE_VERSION = 1
#: Finding kinds about entries (exit 1) and about the log itself (exit 3).
ENTRY_FINDINGS = ("filename-reused", "publisher-changed", "provenance-lost", "file-removed", "entry-unreadable")
LOG_FINDINGS = tuple(p.value for p in Problem)


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir("assay", appauthor=False)) / "monitor"


@dataclass(frozen=True)
class Finding:
    """One JSON object per finding, these fields always present (null where not applicable)."""

    finding: str
    origin: str
    entry: int | None
    time: str | None
    project: str | None
    version: str | None
    filename: str | None
    old: Any
    new: Any
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        where = f"entry {self.entry}: " if self.entry is not None else ""
        return f"{self.finding}: {where}{self.detail}"


@dataclass
class MonitorState:
    path: Path
    key: str | None = None
    origin: str | None = None
    checkpoint: Checkpoint | None = None
    processed: int = 0
    files: dict[str, str] = field(default_factory=dict)
    publishers: dict[str, str] = field(default_factory=dict)
    attested: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, root: Path, prefix: str) -> MonitorState:
        path = root / (hashlib.sha256(prefix.encode()).hexdigest()[:32] + ".json")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"monitor state {path} is unreadable ({exc}); move it away to start over") from None
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise ValueError(f"monitor state {path} is not a version {STATE_VERSION} state file")
        checkpoint = None
        if raw.get("checkpoint"):
            try:
                checkpoint = Checkpoint.parse(raw["checkpoint"])
            except CheckpointError as exc:
                raise ValueError(f"monitor state {path}: {exc}") from None
        return cls(
            path, raw.get("key"), raw.get("origin"), checkpoint, int(raw.get("processed", 0)),
            dict(raw.get("files", {})), dict(raw.get("publishers", {})), set(raw.get("attested", [])),
        )

    def save(self) -> None:
        doc = {
            "version": STATE_VERSION,
            "key": self.key,
            "origin": self.origin,
            "checkpoint": self.checkpoint.text() if self.checkpoint else None,
            "processed": self.processed,
            "files": self.files,
            "publishers": self.publishers,
            "attested": sorted(self.attested),
        }
        write_atomically(self.path, json.dumps(doc, sort_keys=True) + "\n")


def _finding(kind: str, origin: str, index: int, entry: dict[str, Any], old: Any, new: Any, detail: str) -> Finding:
    return Finding(
        kind, origin, index, entry.get("time"), entry.get("project"), entry.get("version"),
        entry.get("filename"), old, new, detail,
    )


def examine(state: MonitorState, origin: str, index: int, entry: dict[str, Any]) -> list[Finding]:
    """The findings of one entry, updating what the state knows."""
    out: list[Finding] = []
    kind, project, filename = entry["kind"], entry.get("project"), entry.get("filename")
    if kind == "upload" and isinstance(filename, str) and isinstance(project, str):
        sha = entry.get("sha256")
        seen = state.files.get(filename)
        if seen is not None and seen != sha:
            out.append(_finding("filename-reused", origin, index, entry, seen, sha,
                                f"{filename} logged again with sha256 {sha}, was {seen}"))
        state.files[filename] = str(sha)
        publisher = entry.get("publisher")
        if isinstance(publisher, dict):
            spelled = rfc8785.dumps(publisher).decode()
            before = state.publishers.get(project)
            if before is not None and before != spelled:
                out.append(_finding("publisher-changed", origin, index, entry, json.loads(before), publisher,
                                    f"{project}: {filename} published by another identity than before"))
            state.publishers[project] = spelled
        if entry.get("provenance_sha256"):
            state.attested.add(project)
        elif project in state.attested:
            out.append(_finding("provenance-lost", origin, index, entry, "attested", None,
                                f"{project}: {filename} uploaded without provenance after attested uploads"))
    elif kind == "provenance-import" and isinstance(project, str) and entry.get("provenance_sha256"):
        state.attested.add(project)
    elif kind == "remove":
        out.append(_finding("file-removed", origin, index, entry, entry.get("sha256"), None,
                            f"{project}: {filename} removed"))
    return out


def _log_finding(origin: str, exc: LogProblem) -> Finding:
    return Finding(exc.problem.value, origin, None, None, None, None, None, None, None, str(exc))


def run(log: RemoteLog, state: MonitorState) -> list[Finding]:
    """One pass: verify the checkpoint, replay the new entries, save the state. A problem with
    the log itself is one finding and leaves the state as it was (a retry sees it again)."""
    if state.origin is not None and state.origin != log.origin:
        raise ValueError(f"the state in {state.path} is of log {state.origin!r}, the key names {log.origin!r}")
    try:
        current, _ = log.checkpoint()
        read = log.reader(current)
        log.check_consistency(state.checkpoint, current, read)
        found: list[Finding] = []
        for index, data in log.entries(state.processed, current, read):
            try:
                entry = entries.decode(data)
            except entries.EntryError as exc:
                found.append(Finding("entry-unreadable", log.origin, index, None, None, None, None, None, None,
                                     str(exc)))
                continue
            found.extend(examine(state, log.origin, index, entry))
    except LogProblem as exc:
        return [_log_finding(log.origin, exc)]
    state.origin = log.origin
    state.key = log.verifier.verifier_key()
    state.checkpoint = current
    state.processed = current.size
    state.save()
    return found
