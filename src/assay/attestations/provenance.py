"""PEP 740 provenance objects: what the index stores and serves for an attested file.

``{"version": 1, "attestation_bundles": [{"publisher": {...}, "attestations": [...]}]}``.
The ``publisher`` block is index-asserted (unsigned), so it always comes from the index's own
record of the publisher whose identity the attestations were verified against, never from what
a client sent.

Issue 14, item 5: a file that went live by a stage's approval also has ``"approvals": [<signed
note>, ...]``, the approval statements signed by the index's log key (docs/releases.md); not a
PEP 740 member (readers of PEP 740, pypi-attestations among them, ignore unknown members), and
kept when the provenance grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assay.publishers import Identity

PROVENANCE_VERSION = 1


def bundle(identity: Identity, attestations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"publisher": identity.to_publisher(), "attestations": list(attestations)}


def provenance(bundles: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"version": PROVENANCE_VERSION, "attestation_bundles": list(bundles)}


def merge(existing: dict[str, Any] | None, new_bundle: dict[str, Any]) -> dict[str, Any]:
    """Add a bundle to a provenance object (PEP 740: provenance may grow; a bundle per identity).
    Attestations of an identity already present join its bundle, without duplicates."""
    if existing is None:
        return provenance([new_bundle])
    # Members other than the bundles (the approval statements) stay as they are.
    rest = {k: v for k, v in existing.items() if k not in ("version", "attestation_bundles")}
    bundles = [dict(b) for b in existing.get("attestation_bundles", [])]
    for b in bundles:
        if b.get("publisher") == new_bundle["publisher"]:
            known = list(b.get("attestations", []))
            b["attestations"] = known + [a for a in new_bundle["attestations"] if a not in known]
            return {**provenance(bundles), **rest}
    return {**provenance([*bundles, new_bundle]), **rest}
