"""Attaching provenance to files already on the index (``assay admin provenance import``).

For files mirrored from another index with their provenance. Verified the way uploads are:
every attestation under the index's trust root, for this very file (name and the stored
sha256), signed by the identity its bundle names. When the project has registered publishers,
that identity must be one of theirs; a project without publishers (a mirror) takes the
bundle's identity as proven by the certificates. The stored ``publisher`` block is re-derived
from the parsed identity, not copied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from assay import audit
from assay.admin import AdminError
from assay.attestations import provenance as prov
from assay.attestations.trust import TrustRoot
from assay.attestations.verify import AttestationInvalid, parse_attestation, verify_attestation
from assay.log import entries as log_entries
from assay.log import store as translog
from assay.publishers import IdentityError, from_publisher, identity_of
from assay.storage.changes import project_changed
from assay.storage.db import Database
from assay.storage.models import DEFAULT_INDEX_ID, File, Project, Publisher, PublisherProject, utcnow


@dataclass(frozen=True)
class Imported:
    filename: str
    bundles: int
    attestations: int
    identities: list[str]
    trusted_block: bool  # True: no registered publisher, the bundle's own identity was used


def load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise AdminError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise AdminError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise AdminError(f"{path} is not a PEP 740 provenance object (version 1)")
    bundles = doc.get("attestation_bundles")
    if not isinstance(bundles, list) or not bundles:
        raise AdminError(f"{path} has no attestation_bundles")
    return doc


def import_provenance(
    db: Database,
    trust: TrustRoot,
    path: Path,
    *,
    filename: str | None,
    actor: str,
    index_id: int = DEFAULT_INDEX_ID,
) -> Imported:
    doc = load(path)
    name = filename or path.name.removesuffix(".provenance")
    with db.read() as session:
        row = session.execute(
            sa.select(File.id, File.sha256, File.project_id, Project.normalized_name)
            .join(Project, Project.id == File.project_id)
            .where(File.index_id == index_id, File.filename == name)
        ).one_or_none()
        if row is None:
            raise AdminError(f"no file named {name!r} on this index (give it with --file)")
        registered = [
            identity
            for p in session.execute(
                sa.select(Publisher)
                .join(PublisherProject, PublisherProject.publisher_id == Publisher.id)
                .where(PublisherProject.project_id == row.project_id)
            ).scalars()
            if (identity := identity_of(p.kind, p.config, p.issuer_url)) is not None
        ]
    allowed = [i.certified_key() for i in registered]
    new_bundles: list[dict[str, Any]] = []
    names: list[str] = []
    count = 0
    for number, raw in enumerate(doc["attestation_bundles"], start=1):
        if not isinstance(raw, dict) or not isinstance(raw.get("attestations"), list) or not raw["attestations"]:
            raise AdminError(f"bundle {number} of {path.name} has no attestations")
        try:
            identity = from_publisher(raw.get("publisher"))
        except IdentityError as exc:
            raise AdminError(f"bundle {number} of {path.name}: {exc}") from None
        if registered and identity.certified_key() not in allowed:
            raise AdminError(
                f"bundle {number} is signed as {identity.summary()}, which is not a publisher registered "
                f"for {row.normalized_name} ({', '.join(i.summary() for i in registered)})"
            )
        policy = identity.policy()
        for index, att_doc in enumerate(raw["attestations"], start=1):
            try:
                verify_attestation(
                    parse_attestation(att_doc), filename=name, sha256=row.sha256, policy=policy, trust=trust
                )
            except AttestationInvalid as exc:
                raise AdminError(f"bundle {number}, attestation {index}: {exc}") from None
            count += 1
        new_bundles.append(prov.bundle(identity, raw["attestations"]))
        names.append(identity.summary())

    with db.write() as session:
        file = session.get(File, row.id)
        project = session.get(Project, row.project_id)
        if file is None or project is None:
            raise AdminError(f"{name} was removed while its provenance was being verified")
        merged = file.provenance
        for b in new_bundles:
            merged = prov.merge(merged, b)
        file.provenance = merged
        project_changed(session, project, listing_changed=False)
        audit.record(
            session,
            actor=actor,
            action="provenance:import",
            project=project.normalized_name,
            target=name,
            details={"source": str(path), "bundles": names, "attestations": count},
        )
        translog.append(
            session,
            project.index_id,
            log_entries.provenance_import(project.normalized_name, name, file.sha256, merged, when=utcnow()),
        )
    return Imported(name, len(new_bundles), count, names, not registered)
