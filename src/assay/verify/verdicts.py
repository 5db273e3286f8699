"""Verdicts: what a file's evidence and its package's pin add up to.

The names are a contract (scripts and tests rely on them):

========================  ==========================================================  =======
verdict                   meaning                                                     outcome
========================  ==========================================================  =======
``verified``              every attestation is sound and satisfies the pin            pass
``pinned``                as verified, against a pin recorded just now (``--tofu``)   pass
``unattested``            no provenance, and no pin expects one                       warning
                                                                                      (failure
                                                                                      with
                                                                                      --strict)
``identity-changed``      sound attestations, but not by the pinned identity          failure
``unpinned``              attested, no pin, not in ``--tofu`` mode                    failure
``attestation-lost``      pinned, but no provenance now                               failure
``invalid``               broken evidence (signature, certificate, log entry,         failure
                          subject or digest), or provenance that could not be
                          obtained or read at all
``log-missing``           the index's log (or a pinned log key) should cover the      failure
                          file, but it has no receipt
``log-mismatch``          the receipt does not log these bytes (its entry names       failure
                          another file or sha256, or its proof does not verify)
``log-fork``              the log's checkpoint is not signed by the pinned key, or    failure
                          is not consistent with one seen before (a fork, rollback)
``log-unwitnessed``       ``--require-witnesses K``: the checkpoint checked carries   failure
                          fewer than K valid cosignatures by pinned witnesses, or
                          the index's log is not checked at all
``not-reproduced``        a wheel pinned ``rebuilt-by`` (``rebuilds = K``) has        failure
                          fewer than K valid matching reports by those rebuilders
``unapproved``            the pin says ``approved = true``, but no approval           failure
                          statement signed by the index's pinned log key covers the
                          file (issue 14: published directly, or a forged statement)
========================  ==========================================================  =======

No path that meets an error ends in ``verified``: a verdict is ``verified`` only when every
attestation of every bundle passed both the cryptographic check and the pin.

The ``identity`` of a result is the identity the verdict is about, in pin-table form: the pin
for ``verified``, ``pinned`` and ``attestation-lost``; the identity that attested the file now
for ``unpinned`` and ``identity-changed`` (when the certificates confirm the index's publisher
block; None otherwise); the pin, if any, for ``invalid`` and ``unattested``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assay.publishers import Identity
from assay.verify.checks import AttestationCheck, BundleCheck, ProvenanceCheck
from assay.verify.files import LockedFile
from assay.verify.pins import (
    Matcher,
    Pin,
    RepositoryPin,
    pin_fields,
    proposal,
)
from assay.verify.retrieve import NoProvenance, Unavailable, Unknown


class Verdict(enum.StrEnum):
    VERIFIED = "verified"
    PINNED = "pinned"
    UNATTESTED = "unattested"
    IDENTITY_CHANGED = "identity-changed"
    UNPINNED = "unpinned"
    ATTESTATION_LOST = "attestation-lost"
    INVALID = "invalid"
    LOG_MISSING = "log-missing"
    LOG_MISMATCH = "log-mismatch"
    LOG_FORK = "log-fork"
    #: --require-witnesses K: the checkpoint checked carries fewer than K valid cosignatures
    #: by pinned witness keys (C2SP tlog-cosignature), or the index's log is not checked.
    LOG_UNWITNESSED = "log-unwitnessed"
    #: Issue 14, item 4: a wheel of a package pinned ``rebuilt-by``/``rebuilds = K`` that
    #: fewer than K of those rebuilders reproduced (by signed reports checked here).
    NOT_REPRODUCED = "not-reproduced"
    #: ``approved = true``: no signed stage approval covers the file (assay.verify.approvals).
    UNAPPROVED = "unapproved"


FAILURES = frozenset(
    {
        Verdict.IDENTITY_CHANGED,
        Verdict.UNPINNED,
        Verdict.ATTESTATION_LOST,
        Verdict.INVALID,
        Verdict.LOG_MISSING,
        Verdict.LOG_MISMATCH,
        Verdict.LOG_FORK,
        Verdict.LOG_UNWITNESSED,
        Verdict.NOT_REPRODUCED,
        Verdict.UNAPPROVED,
    }
)


def is_failure(verdict: Verdict, *, strict: bool) -> bool:
    return verdict in FAILURES or (strict and verdict is Verdict.UNATTESTED)


@dataclass(frozen=True)
class FileResult:
    file: LockedFile
    verdict: Verdict
    reason: str
    identity: Matcher | None = None

    def identity_fields(self) -> dict[str, str] | None:
        return pin_fields(self.identity) if self.identity is not None else None


#: What a file's lookup produced: a checked provenance, or why there is none.
Evidence = ProvenanceCheck | NoProvenance | Unknown | Unavailable


def _environment_mismatch(matcher: Matcher, publisher: Mapping[str, Any]) -> str | None:
    # A signing certificate carries no deployment-environment claim (Fulcio has no extension
    # for it), so a pinned environment can only be compared with the environment the index
    # reports in the bundle's publisher block.
    wanted = getattr(matcher, "environment", None)
    if not wanted:
        return None
    reported = publisher.get("environment") or None
    if reported == wanted:
        return None
    return (
        f"the pin requires environment {wanted!r}, the index reports {reported!r} (certificates "
        "carry no environment claim; this compares the index's publisher block)"
    )


def _pin_result(pin: Pin, expected: Sequence[Matcher], bundle: BundleCheck, att: AttestationCheck) -> str | None:
    """None when the attestation satisfies one of the pin's identities, else why not."""
    problems: list[str] = []
    for matcher in pin.matchers:
        if matcher in expected:
            result = att.pin_results[expected.index(matcher)]
        elif bundle.identity is not None and proposal(bundle.identity) == matcher:
            # A pin recorded during this run (--tofu) from this same publisher block.
            result = att.block_result
        else:
            result = f"not attested by {matcher.summary()}"
        if result is None:
            result = _environment_mismatch(matcher, bundle.publisher)
        if result is None:
            return None
        problems.append(result)
    return "; ".join(problems)


def attesting_identity(check: ProvenanceCheck) -> Identity | None:
    """The identity to propose as a pin: the first bundle's publisher block, when the
    certificates of every attestation in every bundle confirm their own block."""
    if check.error is not None or not check.bundles:
        return None
    for bundle in check.bundles:
        if bundle.identity is None:
            return None
        if any(att.error is not None or att.block_result is not None for att in bundle.attestations):
            return None
    first = check.bundles[0].identity
    return proposal(first) if first is not None else None


def _who(bundle: BundleCheck, att: AttestationCheck) -> str:
    """The signer as a person would name it: the publisher block when the certificate
    confirms it, the certificate itself otherwise."""
    if bundle.identity is not None and att.block_result is None:
        return bundle.identity.summary()
    claimed = f"; the index's publisher block claims {bundle.identity.summary()}" if bundle.identity is not None else ""
    return f"a certificate for {att.signer}{claimed}"


def judge(
    file: LockedFile,
    evidence: Evidence,
    pin: Pin | None,
    *,
    expected: Sequence[Matcher] = (),
    fresh_pin: bool = False,
) -> FileResult:
    """The verdict for one file. ``expected`` are the identities the worker checked the
    certificates against (the pin's, when the pin existed before the run); ``fresh_pin`` marks
    a pin recorded in this run by ``--tofu``."""
    pin_identity = pin.matchers[0] if pin is not None else None
    name = file.name
    if isinstance(evidence, Unavailable):
        return FileResult(file, Verdict.INVALID, f"cannot check: {evidence.reason}", pin_identity)
    if isinstance(evidence, NoProvenance | Unknown):
        if pin is not None:
            return FileResult(
                file,
                Verdict.ATTESTATION_LOST,
                f"pinned to {pin.summary()} ({pin.source}), but {evidence.reason}",
                pin_identity,
            )
        return FileResult(file, Verdict.UNATTESTED, evidence.reason)
    if evidence.error is not None:
        return FileResult(file, Verdict.INVALID, f"malformed provenance: {evidence.error}", pin_identity)
    if errors := evidence.attestation_errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return FileResult(file, Verdict.INVALID, errors[0] + more, pin_identity)

    attested_by = attesting_identity(evidence)
    if pin is None:
        if attested_by is not None:
            return FileResult(
                file,
                Verdict.UNPINNED,
                f"attested by {attested_by.summary()}, but no pin covers {name}: review that "
                f"identity, then pin it with `assay pins update {name}` (or run with --tofu)",
                attested_by,
            )
        bundle = evidence.bundles[0]
        return FileResult(
            file,
            Verdict.UNPINNED,
            f"attested by {_who(bundle, bundle.attestations[0])}, which the index's publisher "
            f"block does not describe; no pin covers {name}, and none can be proposed",
        )

    for bundle in evidence.bundles:
        for att in bundle.attestations:
            problem = _pin_result(pin, expected, bundle, att)
            if problem is not None:
                return FileResult(
                    file,
                    Verdict.IDENTITY_CHANGED,
                    f"pinned to {pin.summary()} ({pin.source}), but attested by "
                    f"{_who(bundle, att)} ({problem}). If the change is expected, review it "
                    f"and run `assay pins update {name}`",
                    attested_by,
                )
    verdict = Verdict.PINNED if fresh_pin else Verdict.VERIFIED
    count = sum(len(b.attestations) for b in evidence.bundles)
    noun = "attestation" if count == 1 else "attestations"
    identity = pin_identity
    if isinstance(identity, RepositoryPin) and attested_by is not None:
        # A repository-only pin (.provenance.txt) names no workflow; report the full identity
        # the certificates confirmed, so that what gets recorded (--write-lock-identities) is
        # a complete pin.
        identity = attested_by
    return FileResult(file, verdict, f"{count} {noun} by {pin.summary()}", identity)
