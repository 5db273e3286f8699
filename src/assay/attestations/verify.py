"""Verifying one PEP 740 attestation, offline, under an explicit Sigstore trust root.

Shared by the index (checking uploads) and the client (``assay verify``). pypi-attestations'
``Attestation.verify`` builds its own public-good verifier on every call and cannot take a
custom trust root, so this module makes the same checks around sigstore's ``verify_dsse``:

1. the certificate chains to the trust root, its SCT, the transparency-log inclusion proof,
   the signed checkpoint and the SET all verify (sigstore);
2. the certificate satisfies the expected identity's policy (sigstore + ``assay.identities``);
3. the DSSE payload is an in-toto statement with exactly one subject, whose name is a valid
   distribution filename equal (as parsed, PEP 740) to the file's, and whose sha256 is the
   file's;
4. the predicate type is one pypi-attestations knows (PyPI publish v1, SLSA provenance v1).
"""

from __future__ import annotations

from typing import Any

import pydantic
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from pypi_attestations import Attestation, AttestationType, ConversionError
from sigstore.errors import Error as SigstoreError
from sigstore.verify.policy import VerificationPolicy

from assay import untrusted_json
from assay.attestations.trust import TrustRoot

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
KNOWN_PREDICATES = {t.value for t in AttestationType}


class AttestationInvalid(ValueError):
    """An attestation did not verify; the message says which check failed."""


def parse_attestation(raw: Any) -> Attestation:
    """An attestation object from parsed JSON, or ``AttestationInvalid`` saying what is wrong."""
    try:
        return Attestation.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'attestation'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise AttestationInvalid(f"not a valid PEP 740 attestation object ({problems})") from None


def _parsed_filename(name: str) -> tuple[Any, ...]:
    if name.endswith(".whl"):
        return tuple(parse_wheel_filename(name))
    return tuple(parse_sdist_filename(name))


def verify_attestation(
    attestation: Attestation,
    *,
    filename: str,
    sha256: str,
    policy: VerificationPolicy,
    trust: TrustRoot,
) -> str:
    """Verify ``attestation`` for the distribution ``filename`` with digest ``sha256``.

    Returns the predicate type; raises ``AttestationInvalid``.
    """
    try:
        bundle = attestation.to_bundle()
    except ConversionError as exc:
        raise AttestationInvalid(f"malformed verification material: {exc}") from None
    except Exception as exc:  # sigstore's bundle validation raises assorted types
        raise AttestationInvalid(f"malformed verification material: {exc}") from None
    try:
        payload_type, payload = trust.verifier.verify_dsse(bundle, policy)
    except SigstoreError as exc:
        raise AttestationInvalid(f"signature verification failed: {exc}") from None
    except ValueError as exc:  # malformed certificates and log entries surface as ValueError
        raise AttestationInvalid(f"signature verification failed: {exc}") from None
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise AttestationInvalid(f"the envelope's payload type is {payload_type!r}, not an in-toto statement")
    try:
        # Signed, but by whoever holds a Sigstore identity: bounded like any outside JSON.
        statement = untrusted_json.loads(payload)
        subjects = statement["subject"]
        predicate_type = statement["predicateType"]
    except untrusted_json.JSONTooDeep as exc:
        raise AttestationInvalid(f"the signed statement is not an in-toto statement: {exc}") from None
    except (ValueError, KeyError, TypeError):
        raise AttestationInvalid("the signed statement is not an in-toto statement") from None
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise AttestationInvalid("the statement must have exactly one subject (PEP 740)")
    subject = subjects[0]
    name = subject.get("name") if isinstance(subject, dict) else None
    digest = subject.get("digest", {}).get("sha256") if isinstance(subject, dict) else None
    if not isinstance(name, str):
        raise AttestationInvalid("the statement's subject has no name")
    try:
        same_file = _parsed_filename(name) == _parsed_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise AttestationInvalid(f"the statement's subject is not a distribution filename: {exc}") from None
    if not same_file:
        raise AttestationInvalid(f"the attestation is for {name!r}, not for {filename!r}")
    if digest != sha256.lower():
        raise AttestationInvalid(f"the attestation's sha256 ({digest}) is not the file's ({sha256})")
    if predicate_type not in KNOWN_PREDICATES:
        raise AttestationInvalid(f"unknown attestation predicate type {predicate_type!r}")
    return str(predicate_type)
