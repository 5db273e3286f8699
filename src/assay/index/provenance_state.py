"""Provenance over time (issue 15, item 3): one state per release, from its files' PEP 740
provenance and the previous attested release's.

The web pages (``assay.ui``) and the JSON API (``info.provenance_state``) both call
``release_states``, so people and scripts see one truth. The states:

- ``none``: no file of the release has provenance, and no earlier release had any;
- ``full``: every file has provenance, all from one source, the source of the previous attested
  release (or there is none before it);
- ``partial``: some files have provenance, others none (one source);
- ``inconsistent``: the files' provenance names several sources (repositories or workflows);
- ``lost``: no file has provenance, but an earlier release had some (PyPI's "loss of
  provenance" warning: the usual sign of a release published outside the usual pipeline);
- ``changed``: attested, but by a source the previous attested release did not have (another
  repository, workflow or publisher kind).

A *source* is an attestation bundle's publisher block (PEP 740: the index's record of the
Trusted Publisher) without its ``environment``: a certificate does not carry the environment,
so two bundles differing only there are the same signer as far as signatures can tell
(``publishers.base.IdentityBase.certified_key``). "Previous" is by version order (PEP 440), the
order installers choose in; yanked releases count (they were published by someone), releases
without files do not (there is nothing to compare).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ProvenanceState = Literal["none", "full", "partial", "inconsistent", "lost", "changed"]
STATES: tuple[ProvenanceState, ...] = ("none", "full", "partial", "inconsistent", "lost", "changed")
#: The states the pages show as warnings.
WARNINGS: frozenset[ProvenanceState] = frozenset({"lost", "changed"})

#: Publisher-block fields a signing certificate does not carry.
_UNCERTIFIED = ("environment",)


def source_key(publisher: Mapping[str, Any]) -> str:
    """A publisher block as a comparable string (sorted JSON, uncertified fields dropped)."""
    block = {k: v for k, v in publisher.items() if k not in _UNCERTIFIED}
    return json.dumps(block, sort_keys=True, separators=(",", ":"), default=str)


def file_sources(provenance: Mapping[str, Any] | None) -> frozenset[str]:
    """The sources of one file's provenance object (empty: no provenance)."""
    if not provenance:
        return frozenset()
    bundles = provenance.get("attestation_bundles")
    if not isinstance(bundles, list):
        return frozenset()
    return frozenset(
        source_key(b["publisher"])
        for b in bundles
        if isinstance(b, Mapping) and isinstance(b.get("publisher"), Mapping) and b.get("attestations")
    )


@dataclass(frozen=True, slots=True)
class ReleaseProvenance:
    state: ProvenanceState
    #: The release's own sources (``source_key`` strings), sorted.
    sources: tuple[str, ...]
    #: Files with provenance, of how many.
    attested: int
    files: int
    #: The closest earlier release with provenance, and its sources (for lost and changed).
    previous_version: str | None
    previous_sources: tuple[str, ...]

    @property
    def warning(self) -> bool:
        return self.state in WARNINGS


def release_states(releases: Iterable[tuple[str, Sequence[frozenset[str]]]]) -> dict[str, ReleaseProvenance]:
    """``releases``: (version, each file's ``file_sources``), in ascending version order.
    Returns each version's state."""
    out: dict[str, ReleaseProvenance] = {}
    previous: tuple[str | None, frozenset[str]] = (None, frozenset())
    for version, files in releases:
        attested = [s for s in files if s]
        mine = frozenset().union(*attested) if attested else frozenset()
        state: ProvenanceState
        if not files:
            state = "none"
        elif not attested:
            state = "lost" if previous[0] is not None else "none"
        elif len(mine) > 1:
            state = "inconsistent"
        elif previous[0] is not None and not mine <= previous[1]:
            state = "changed"
        elif len(attested) < len(files):
            state = "partial"
        else:
            state = "full"
        out[version] = ReleaseProvenance(
            state, tuple(sorted(mine)), len(attested), len(files), previous[0], tuple(sorted(previous[1]))
        )
        if attested:
            previous = (version, mine)
    return out


def describe_source(key: str) -> str:
    """A source key for people: ``GitHub trailofbits/pypi-attestations, workflow release.yml``."""
    try:
        block = json.loads(key)
    except ValueError:  # pragma: no cover - keys are made by source_key
        return key
    if not isinstance(block, dict):  # pragma: no cover
        return key
    kind = str(block.pop("kind", "publisher"))
    parts = [f"{name} {value}" for name, value in block.items() if value not in (None, "", [], {})]
    return kind + (": " + ", ".join(parts) if parts else "")
