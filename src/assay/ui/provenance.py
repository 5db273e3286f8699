"""The provenance panel's facts (issue 15, item 2), read from a file's stored PEP 740
provenance object, each labelled with who asserts it:

- the *index* asserts the publisher block (PEP 740: unsigned, the index's record of the Trusted
  Publisher the attestations were verified against) and when it checked the signatures;
- the *signing certificate* (Fulcio, issued by Sigstore from the CI job's OIDC token) carries
  the identity, the source repository, commit and ref, and the build configuration;
- the *transparency log* (Rekor) entry carries the log index and its integrated time.

Nothing here verifies anything again: the index verified the attestations when the file was
published (``assay.attestations.upload``), and the panel says so, and when, and no more.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from assay.publishers.policies import (
    BUILD_CONFIG_URI,
    ISSUER_V2,
    SOURCE_REPOSITORY_DIGEST,
    SOURCE_REPOSITORY_REF,
    SOURCE_REPOSITORY_URI,
    extension_text,
    san_values,
)

#: Fulcio's Build Signer URI (.9) and Run Invocation URI (.21).
BUILD_SIGNER_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.9")
RUN_INVOCATION_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.21")


@dataclass(frozen=True)
class Attestation:
    predicate_type: str | None
    #: From the signing certificate (None when absent or unreadable).
    identity: str | None = None
    issuer: str | None = None
    source_repository: str | None = None
    source_commit: str | None = None
    source_ref: str | None = None
    build_config: str | None = None
    build_signer: str | None = None
    run_invocation: str | None = None
    cert_not_before: dt.datetime | None = None
    #: From the transparency-log entry.
    log_index: str | None = None
    log_url: str | None = None
    integrated_time: dt.datetime | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Bundle:
    #: The index's record of the publisher (kind, repository, workflow, environment, ...).
    publisher: dict[str, Any]
    attestations: list[Attestation] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.publisher.get("kind", "unknown"))

    @property
    def fields(self) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in self.publisher.items() if k != "kind" and v not in (None, "")]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _attestation(raw: Any, log_viewer_url: str) -> Attestation:
    if not isinstance(raw, dict):
        return Attestation(None, problem="not an attestation object")
    envelope = _dict(raw.get("envelope"))
    predicate = None
    try:
        statement = json.loads(base64.b64decode(str(envelope.get("statement", ""))))
        predicate = _text(statement.get("predicateType")) if isinstance(statement, dict) else None
    except ValueError:
        pass
    material = _dict(raw.get("verification_material"))
    entries = material.get("transparency_entries") or [{}]
    entry = entries[0] if isinstance(entries, list) and isinstance(entries[0], dict) else {}
    log_index = _text(str(entry["logIndex"])) if "logIndex" in entry else None
    integrated = None
    with contextlib.suppress(KeyError, ValueError, TypeError, OverflowError):
        integrated = dt.datetime.fromtimestamp(int(entry["integratedTime"]), dt.UTC)
    log_url = log_viewer_url.replace("{log_index}", log_index) if log_viewer_url and log_index else None
    facts: dict[str, Any] = {}
    problem = None
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(str(material.get("certificate", ""))))
        sans = san_values(cert)
        facts = {
            "identity": sans[0] if sans else None,
            "issuer": extension_text(cert, ISSUER_V2),
            "source_repository": extension_text(cert, SOURCE_REPOSITORY_URI),
            "source_commit": extension_text(cert, SOURCE_REPOSITORY_DIGEST),
            "source_ref": extension_text(cert, SOURCE_REPOSITORY_REF),
            "build_config": extension_text(cert, BUILD_CONFIG_URI),
            "build_signer": extension_text(cert, BUILD_SIGNER_URI),
            "run_invocation": extension_text(cert, RUN_INVOCATION_URI),
            "cert_not_before": cert.not_valid_before_utc,
        }
    except Exception as exc:  # a stored object the index accepted; still, never a 500 for a page
        problem = f"the signing certificate could not be read ({type(exc).__name__})"
    return Attestation(
        predicate, log_index=log_index, log_url=log_url, integrated_time=integrated, problem=problem, **facts
    )


def bundles(provenance: dict[str, Any] | None, log_viewer_url: str) -> list[Bundle]:
    if not provenance:
        return []
    out = []
    for raw in provenance.get("attestation_bundles") or []:
        if not isinstance(raw, dict):
            continue
        publisher = _dict(raw.get("publisher"))
        out.append(Bundle(publisher, [_attestation(a, log_viewer_url) for a in raw.get("attestations") or []]))
    return out
