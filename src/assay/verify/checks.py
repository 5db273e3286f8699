"""What checking a provenance object found: plain data, without sigstore.

``assay.verify.provenance`` produces these (in worker processes: they pickle), the verdicts
read them, and ``assay.verify.memo`` stores a sound one between runs in the JSON form below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from assay.publishers import Identity, IdentityError, from_publisher


@dataclass(frozen=True)
class AttestationCheck:
    #: Why the attestation is not sound evidence for this file; None when it is.
    error: str | None
    predicate_type: str | None = None
    #: Who the certificate says signed it (SAN and OIDC issuer), for messages.
    signer: str = ""
    #: Per identity the pin names: None when the certificate satisfies it, else why not.
    pin_results: tuple[str | None, ...] = ()
    #: Against the bundle's own publisher block: None when satisfied, else why not.
    block_result: str | None = "not checked"


@dataclass(frozen=True)
class BundleCheck:
    publisher: Mapping[str, Any]
    #: The publisher block parsed, or None (unknown kind, missing field: see identity_error).
    identity: Identity | None
    identity_error: str | None
    attestations: tuple[AttestationCheck, ...]


@dataclass(frozen=True)
class ProvenanceCheck:
    #: Why the document is not a usable provenance object (not JSON, wrong shape), else None.
    error: str | None
    bundles: tuple[BundleCheck, ...] = field(default=())

    @property
    def attestation_errors(self) -> list[str]:
        return [
            f"bundle {b}, attestation {a}: {att.error}"
            for b, bundle in enumerate(self.bundles)
            for a, att in enumerate(bundle.attestations)
            if att.error is not None
        ]

    @property
    def sound(self) -> bool:
        """Every attestation of every bundle passed the cryptographic checks."""
        return self.error is None and bool(self.bundles) and not self.attestation_errors

    def to_json(self) -> dict[str, Any]:
        """A sound check as JSON (what the memo stores)."""
        assert self.sound, "only sound checks are stored"
        return {
            "bundles": [
                {
                    "publisher": dict(bundle.publisher),
                    "identity_error": bundle.identity_error,
                    "attestations": [
                        {
                            "predicate_type": att.predicate_type,
                            "signer": att.signer,
                            "pin_results": list(att.pin_results),
                            "block_result": att.block_result,
                        }
                        for att in bundle.attestations
                    ],
                }
                for bundle in self.bundles
            ]
        }

    @classmethod
    def from_json(cls, data: Any) -> ProvenanceCheck:
        """The inverse of ``to_json``; raises ``ValueError`` for anything else. The bundle's
        identity is parsed again from its publisher block, as ``check_provenance`` parsed it."""
        try:
            bundles = []
            for raw in data["bundles"]:
                publisher = raw["publisher"]
                identity_error = _optional_text(raw["identity_error"])
                identity = from_publisher(publisher) if identity_error is None else None
                attestations = tuple(
                    AttestationCheck(
                        error=None,
                        predicate_type=_text(att["predicate_type"]),
                        signer=_text(att["signer"]),
                        pin_results=tuple(_optional_text(r) for r in att["pin_results"]),
                        block_result=_optional_text(att["block_result"]),
                    )
                    for att in raw["attestations"]
                )
                if not isinstance(publisher, dict) or not attestations:
                    raise ValueError("not a stored check")
                bundles.append(BundleCheck(publisher, identity, identity_error, attestations))
        except (KeyError, TypeError, IdentityError) as exc:
            raise ValueError(f"not a stored check: {exc}") from None
        if not bundles:
            raise ValueError("not a stored check: no bundles")
        return cls(error=None, bundles=tuple(bundles))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)
