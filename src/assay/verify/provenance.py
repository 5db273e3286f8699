"""Checking one provenance object (PEP 740) against one file: the CPU-bound part of a run.

For every attestation of every bundle, once:

1. the cryptography, under the run's trust root, with ``assay.attestations.verify``: the
   certificate chain, SCT, transparency-log inclusion proof, checkpoint and SET, the DSSE
   signature, and the statement's single subject against the file's name and its sha256 *as
   the input pins it* (never a re-download);
2. then the identity, on the certificate sigstore just verified: against each identity the
   pin names, and against the bundle's own ``publisher`` block.

Keeping the two apart is what lets a verdict say ``invalid`` (the evidence is broken) rather
than ``identity-changed`` (the evidence is sound, the signer is someone else), and name the
signer. The publisher block's result is only ever used to propose or explain; the pin decides.

The results (``assay.verify.checks``) are plain picklable data, so this runs in worker
processes, and a run can remember them (``assay.verify.memo``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from cryptography.x509 import Certificate
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sigstore.errors import Error as SigstoreError
from sigstore.verify.policy import VerificationPolicy

from assay import untrusted_json
from assay.attestations.trust import TrustRoot
from assay.attestations.verify import AttestationInvalid, parse_attestation, verify_attestation
from assay.publishers import Identity, IdentityError, from_publisher
from assay.publishers.policies import ISSUER_V1, ISSUER_V2, extension_text, san_values
from assay.verify.checks import AttestationCheck, BundleCheck, ProvenanceCheck
from assay.verify.pins import Matcher


class _Capture:
    """The policy handed to sigstore's ``verify_dsse``: it keeps the leaf certificate sigstore
    is verifying and accepts it, because the identity is judged right after, on that same
    certificate, once the chain, log entry and signature are known good (module docstring).
    A result is never used unless ``verify_dsse`` returned without error."""

    def __init__(self) -> None:
        self.certificate: Certificate | None = None

    def verify(self, cert: Certificate) -> None:
        self.certificate = cert


def _signer(cert: Certificate) -> str:
    issuer = extension_text(cert, ISSUER_V2) or extension_text(cert, ISSUER_V1) or "unknown issuer"
    return f"{', '.join(san_values(cert)) or 'no subject'} (issuer {issuer})"


def _satisfies(policy: VerificationPolicy, cert: Certificate) -> str | None:
    try:
        policy.verify(cert)
    except SigstoreError as exc:
        return str(exc)
    except Exception as exc:  # a malformed extension in a chain-valid certificate
        return f"certificate extensions unreadable: {exc}"
    return None


class _Shape(BaseModel):
    # Shape only: the raw objects are what gets verified. Strict, so "1" is not version 1.
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class _Publisher(_Shape):
    kind: str


class _Bundle(_Shape):
    publisher: _Publisher
    attestations: Annotated[list[Any], Field(min_length=1)]


class _Provenance(_Shape):
    """PEP 740 provenance object: ``{"version": 1, "attestation_bundles": [{publisher,
    attestations}]}``."""

    version: Literal[1]
    attestation_bundles: Annotated[list[_Bundle], Field(min_length=1)]


def _shape_error(doc: Any) -> str | None:
    try:
        _Provenance.model_validate(doc)
    except ValidationError as exc:
        loc = exc.errors(include_url=False)[0]["loc"]
        if not loc:
            return "the provenance is not a JSON object"
        if loc[0] == "version":
            return f"unsupported provenance version {doc.get('version')!r} (PEP 740 defines 1)"
        if len(loc) == 1:
            return "the provenance has no attestation_bundles"
        where = f"attestation_bundles[{loc[1]}]"
        if len(loc) == 2:
            return f"{where} is not an object"
        if loc[2] == "publisher":
            return f"{where} has no publisher with a kind"
        return f"{where} has no attestations"
    return None


def check_provenance(
    body: bytes,
    *,
    filename: str,
    sha256: str,
    expected: tuple[Matcher, ...],
    trust: TrustRoot,
) -> ProvenanceCheck:
    try:
        doc = untrusted_json.loads(body)  # bounded nesting before pydantic walks it
    except ValueError:
        return ProvenanceCheck(error="the provenance is not JSON")
    if (problem := _shape_error(doc)) is not None:
        return ProvenanceCheck(error=problem)
    pin_policies = [m.policy() for m in expected]
    bundles: list[BundleCheck] = []
    for raw_bundle in doc["attestation_bundles"]:
        publisher = raw_bundle["publisher"]
        identity: Identity | None
        try:
            identity, identity_error = from_publisher(publisher), None
        except IdentityError as exc:
            identity, identity_error = None, str(exc)
        # When the block names the pinned identity (the usual case), its result is the pin's.
        same_as_pin = expected.index(identity) if identity is not None and identity in expected else None
        block_policy = None
        if identity is not None and same_as_pin is None:
            try:
                block_policy = identity.policy()
            except Exception as exc:  # an index-supplied block no policy can be built from
                identity, identity_error = None, f"unusable publisher block: {exc}"
        checks: list[AttestationCheck] = []
        for raw in raw_bundle["attestations"]:
            capture = _Capture()
            try:
                predicate = verify_attestation(
                    parse_attestation(raw),
                    filename=filename,
                    sha256=sha256,
                    policy=capture,
                    trust=trust,
                )
            except AttestationInvalid as exc:
                checks.append(AttestationCheck(error=str(exc)))
                continue
            except Exception as exc:  # hostile input must fail the file, never crash the run
                checks.append(AttestationCheck(error=f"could not be checked ({type(exc).__name__}: {exc})"))
                continue
            cert = capture.certificate
            if cert is None:  # pragma: no cover - sigstore always applies the policy
                checks.append(AttestationCheck(error="no signing certificate was verified"))
                continue
            pin_results = tuple(_satisfies(policy, cert) for policy in pin_policies)
            if same_as_pin is not None:
                block_result = pin_results[same_as_pin]
            elif block_policy is not None:
                block_result = _satisfies(block_policy, cert)
            else:
                block_result = identity_error
            checks.append(
                AttestationCheck(
                    error=None,
                    predicate_type=predicate,
                    # Named only in messages about a mismatch; reading it costs ~8% of a check.
                    signer=_signer(cert) if any(pin_results) or block_result is not None else "",
                    pin_results=pin_results,
                    block_result=block_result,
                )
            )
        bundles.append(BundleCheck(dict(publisher), identity, identity_error, tuple(checks)))
    return ProvenanceCheck(error=None, bundles=tuple(bundles))
