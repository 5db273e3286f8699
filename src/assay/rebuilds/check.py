"""Checking one rebuild attestation, offline, under an explicit Sigstore trust root: the index
does it when a rebuilder submits one, ``assay verify`` again for each one it counts.

1. the PEP 740 attestation object verifies (certificate chain to the trust root, SCT, log
   inclusion proof and SET: sigstore's ``verify_dsse``);
2. its certificate names one of the expected rebuilders (OIDC issuer and SAN, checked with
   sigstore's ``Identity`` policy: the SAN exactly, as Fulcio writes an e-mail or a subject);
3. the statement is a rebuild statement (``predicate``) whose subject is this file, by name
   and sha256.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sigstore.errors import Error as SigstoreError

from assay import untrusted_json
from assay.attestations.trust import TrustRoot
from assay.attestations.verify import IN_TOTO_PAYLOAD_TYPE, AttestationInvalid, parse_attestation
from assay.publishers.policies import ISSUER_V1, ISSUER_V2, MaintainerPolicy, extension_text, san_values
from assay.rebuilds import predicate
from assay.rebuilds.predicate import PredicateError, RebuildClaim


@dataclass(frozen=True, slots=True)
class Expected:
    """A rebuilder: its OIDC issuer and its certificate's SubjectAlternativeName, an e-mail
    (``kind`` "email") or any other SAN ("subject")."""

    issuer: str
    identity: str
    kind: str = "subject"

    def policy(self) -> MaintainerPolicy:
        # A rebuilder is a person's or a workload's own Sigstore identity, matched as a
        # maintainer's is (issuer without a trailing slash, an e-mail without case).
        email = self.identity if self.kind == "email" else None
        return MaintainerPolicy(issuer=self.issuer, email=email, subject=None if email else self.identity)


class RebuildInvalid(ValueError):
    """The attestation does not verify (400); the message says which check failed."""


class NotARebuilder(RebuildInvalid):
    """Sound, but signed by none of the expected rebuilders (403)."""


@dataclass(frozen=True, slots=True)
class Checked:
    claim: RebuildClaim
    #: Which of the expected rebuilders signed it (its position in the sequence given).
    signer: int
    #: Who the certificate names, for messages: "SAN (issuer)".
    signed_by: str


def check(raw: Any, *, filename: str, sha256: str, expected: Sequence[Expected], trust: TrustRoot) -> Checked:
    try:
        attestation = parse_attestation(raw)
        bundle = attestation.to_bundle()
    except AttestationInvalid as exc:
        raise RebuildInvalid(str(exc)) from None
    except Exception as exc:  # sigstore's bundle validation raises assorted types
        raise RebuildInvalid(f"malformed verification material: {exc}") from None
    # Who the certificate names first (cheap, no cryptography): a certificate naming none of
    # the rebuilders is refused saying whom it names; then the signature, the chain to the
    # trust root, the SCT and the log entry, under that rebuilder's identity policy.
    cert = bundle.signing_certificate
    issuer = extension_text(cert, ISSUER_V2) or extension_text(cert, ISSUER_V1) or "?"
    signed_by = f"{', '.join(san_values(cert)) or '?'} ({issuer})"
    signer = None
    for position, who in enumerate(expected):
        try:
            who.policy().verify(cert)
        except SigstoreError:
            continue
        signer = position
        break
    if signer is None:
        raise NotARebuilder(f"signed by {signed_by}, who is not a registered rebuilder of this project")
    policy = expected[signer].policy()
    try:
        payload_type, payload = trust.verifier.verify_dsse(bundle, policy)
    except (SigstoreError, ValueError) as exc:
        raise RebuildInvalid(f"signature verification failed: {exc}") from None
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise RebuildInvalid(f"the envelope's payload type is {payload_type!r}, not an in-toto statement")
    try:
        statement = untrusted_json.loads(payload)
        claim = predicate.parse(statement, subject=(filename, sha256))
    except PredicateError as exc:
        raise RebuildInvalid(f"not a rebuild statement of this file: {exc}") from None
    except ValueError as exc:  # untrusted_json's refusals (JSONTooDeep is one)
        raise RebuildInvalid(f"the signed statement is not JSON: {exc}") from None
    return Checked(claim, signer, signed_by)
