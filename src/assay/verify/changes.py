"""``assay pins diff`` and ``assay pins update``: what the index says now, against the pins.

A proposed pin is always an identity the certificates confirmed (the publisher block of a
bundle whose every attestation verified and satisfied that block), never the block alone.
Nothing changes a pin except ``update`` naming the package.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.utils import NormalizedName, canonicalize_name

from assay.verify.errors import InputError
from assay.verify.pins import LEGACY_PINS_FILE, Matcher, Pin, PinSet, pin_fields
from assay.verify.runner import Outcome
from assay.verify.verdicts import FileResult, Verdict


class Action(enum.StrEnum):
    ADD = "add"
    CHANGE = "change"
    REMOVE = "remove"
    #: Files of the package disagree, or their evidence is broken: nothing to propose.
    CONFLICT = "conflict"


@dataclass(frozen=True)
class PinChange:
    name: NormalizedName
    action: Action
    old: Pin | None
    new: Matcher | None
    reason: str

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "action": self.action.value,
            "old": [pin_fields(m) for m in self.old.matchers] if self.old else None,
            "new": pin_fields(self.new) if self.new else None,
            "reason": self.reason,
        }


def _package_change(name: NormalizedName, results: list[FileResult], pin: Pin | None) -> PinChange | None:
    def having(*verdicts: Verdict) -> list[FileResult]:
        return [r for r in results if r.verdict in verdicts]

    if invalid := having(Verdict.INVALID):
        return PinChange(name, Action.CONFLICT, pin, None, f"{invalid[0].file.label}: {invalid[0].reason}")
    without = having(Verdict.ATTESTATION_LOST, Verdict.UNATTESTED)
    attested = [r for r in results if r not in without]
    if not attested:
        if pin is not None:
            return PinChange(
                name,
                Action.REMOVE,
                pin,
                None,
                f"no file of {name} has provenance now ({without[0].reason})",
            )
        return None  # unattested and unpinned: nothing to pin
    if without:
        return PinChange(
            name,
            Action.CONFLICT,
            pin,
            None,
            f"{without[0].file.label} has no provenance, while other files do",
        )
    changed = having(Verdict.UNPINNED, Verdict.IDENTITY_CHANGED)
    if not changed:
        return None  # every file verified against the pin
    if unclear := [r for r in changed if r.identity is None]:
        return PinChange(name, Action.CONFLICT, pin, None, f"{unclear[0].file.label}: {unclear[0].reason}")
    proposals = {r.identity for r in changed}
    if len(proposals) > 1 or len(changed) < len(attested):
        seen = sorted({r.identity.summary() for r in attested if r.identity is not None})
        return PinChange(
            name,
            Action.CONFLICT,
            pin,
            None,
            "its files are attested by different identities: " + "; ".join(seen),
        )
    new = changed[0].identity
    assert new is not None
    if pin is None:
        return PinChange(name, Action.ADD, None, new, f"attested by {new.summary()}")
    return PinChange(name, Action.CHANGE, pin, new, f"{pin.summary()} -> {new.summary()}")


def pin_changes(outcome: Outcome, pins: PinSet) -> list[PinChange]:
    by_package: dict[NormalizedName, list[FileResult]] = defaultdict(list)
    for result in outcome.results:
        by_package[result.file.name].append(result)
    changes = []
    for name in sorted(by_package):
        change = _package_change(name, by_package[name], pins.get(name))
        if change is not None:
            changes.append(change)
    return changes


def apply_changes(changes: list[PinChange], names: Iterable[str], pins: PinSet, *, known: Iterable[str]) -> list[str]:
    """Apply the changes for ``names`` to the pins file (not yet saved). Returns one line
    per package saying what happened. Refuses names the input does not contain and
    conflicts (``InputError``)."""
    by_name = {c.name: c for c in changes}
    present = {canonicalize_name(n) for n in known}
    lines: list[str] = []
    for raw in names:
        name = canonicalize_name(raw)
        if name not in present:
            raise InputError(f"{raw} is not a package of the input; nothing to update")
        change = by_name.get(name)
        if change is None:
            lines.append(f"{name}: the pin already matches what the index says")
            continue
        if change.action is Action.CONFLICT:
            raise InputError(f"{name}: cannot update the pin: {change.reason}")
        old = change.old
        if change.action is Action.REMOVE:
            if old is not None and name not in pins.file.pins:
                raise InputError(
                    f"{name}: the pin comes from {old.source}; remove it there "
                    f"({'edit the file' if LEGACY_PINS_FILE in old.source else 'rewrite the lock'})"
                )
            pins.file.remove(name)
            lines.append(f"{name}: pin removed ({change.reason})")
            continue
        assert change.new is not None
        pins.file.set(name, change.new)
        shadow = (
            f" (it takes precedence over {old.source})" if old is not None and old.source != pins.file.path.name else ""
        )
        lines.append(f"{name}: pinned to {change.new.summary()}{shadow}")
    return lines
