"""The signed approval statement of a staged release (issue 14; written by
``assay.stages.actions.statement_text``, docs/releases.md "Signed statement"), read back.

A C2SP signed note by the index's log key, text::

    assay release approval v1
    index <origin>
    project <normalized name>
    version <version>
    stage <id>
    approved <RFC 3339 time>
    approver <username>              (one per owner who approved)
    triggered-by <who>               (one per uploader)
    file sha256:<hex> <filename>     (one per file that went live)

Here because both the index (the JSON API shows each file's approval) and ``assay verify``
(``approved = true`` pins) read it, and the verify client may not import the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assay.log import note

HEADER = "assay release approval v1"

#: The PEP 740 provenance object's member holding an attested file's signed approval statements
#: (assay's own member; PEP 740 readers ignore members they do not know).
PROVENANCE_MEMBER = "approvals"


def with_statement(provenance: dict[str, Any], statement: str) -> dict[str, Any]:
    """The provenance object with one more signed approval statement."""
    return {**provenance, PROVENANCE_MEMBER: [*provenance.get(PROVENANCE_MEMBER, []), statement]}


def in_provenance(provenance: Any) -> list[str]:
    """The signed approval statements a provenance object carries."""
    found = provenance.get(PROVENANCE_MEMBER) if isinstance(provenance, dict) else None
    return [s for s in found if isinstance(s, str)] if isinstance(found, list) else []


class StatementError(ValueError):
    """Not an approval statement, or not signed by the expected key; says which."""


@dataclass(frozen=True)
class Approval:
    index: str
    project: str
    version: str
    stage: str
    approved: str
    approvers: tuple[str, ...]
    triggered_by: tuple[str, ...]
    #: (sha256, filename) of every file that went live by this approval.
    files: tuple[tuple[str, str], ...]
    #: The signed note, verbatim.
    statement: str

    def covers(self, filename: str, sha256: str) -> bool:
        return (sha256.lower(), filename) in self.files

    def summary(self) -> str:
        return f"approved by {', '.join(self.approvers) or 'nobody'} at {self.approved}"

    def to_json(self) -> dict[str, object]:
        return {
            "approved": self.approved,
            "approvers": list(self.approvers),
            "triggered_by": list(self.triggered_by),
            "stage": self.stage,
            "statement": self.statement,
        }


def parse_text(text: str, statement: str) -> Approval:
    lines = text.rstrip("\n").split("\n")
    if not lines or lines[0] != HEADER:
        raise StatementError(f"not an approval statement (its first line is not {HEADER!r})")
    single: dict[str, str] = {}
    many: dict[str, list[str]] = {"approver": [], "triggered-by": [], "file": []}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        if key in many:
            many[key].append(value)
        elif key in ("index", "project", "version", "stage", "approved") and key not in single:
            single[key] = value
        else:
            raise StatementError(f"unexpected line in the approval statement: {line!r}")
    missing = [k for k in ("index", "project", "version", "stage", "approved") if k not in single]
    if missing:
        raise StatementError(f"the approval statement lacks {', '.join(missing)}")
    files: list[tuple[str, str]] = []
    for value in many["file"]:
        digest, _, filename = value.partition(" ")
        if not digest.startswith("sha256:") or not filename:
            raise StatementError(f"malformed file line in the approval statement: {value!r}")
        files.append((digest.removeprefix("sha256:").lower(), filename))
    return Approval(
        index=single["index"],
        project=single["project"],
        version=single["version"],
        stage=single["stage"],
        approved=single["approved"],
        approvers=tuple(many["approver"]),
        triggered_by=tuple(many["triggered-by"]),
        files=tuple(files),
        statement=statement,
    )


def read_unverified(statement: str) -> Approval:
    """The statement's contents without checking its signature: for the index's own pages,
    which serve what the index itself signed."""
    try:
        text, _sigs = note.parse(statement.encode())
    except note.NoteError as exc:
        raise StatementError(f"not a signed note: {exc}") from None
    return parse_text(text, statement)


def open_statement(statement: str, verifier: note.Verifier) -> Approval:
    """The statement, verified under ``verifier`` (the index's log key, ``/log/key``)."""
    try:
        opened = note.open_note(statement.encode(), [verifier])
    except note.NoteError as exc:
        raise StatementError(f"the approval statement is not signed by the index's log key: {exc}") from None
    return parse_text(opened.text, statement)
