"""Any OIDC issuer the admin trusts (not on PyPI), with claim constraints the admin writes: each
names a claim and a pattern (an exact value, or ``*`` / ``**`` wildcards after a literal
namespace: ``assay.identities.patterns``). ``subject`` (optional) is the SAN pattern a PEP 740
signing certificate from this publisher must carry; without it the publisher cannot attest.

Publishers stored before the pattern language (shell globs) are not migrated: a stored pattern
is compiled at each exchange, and one outside the language (``?``, ``[``, no literal namespace)
never matches; the refusal names it, and ``publisher list`` flags it, so the admin re-registers
the publisher. Patterns inside the language now match less than a glob did (``*`` stops at
``/`` and ``:``), never more."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator

from assay.identities.patterns import PatternError, compile_pattern
from assay.publishers.base import (
    Claims,
    Identity,
    IdentityBase,
    IdentityError,
    KindConfig,
    Mismatch,
    PublisherKind,
    check_pattern,
    cli,
    registering,
    require_field,
)
from assay.publishers.policies import IssuerAndSubjectPolicy

if TYPE_CHECKING:
    from sigstore.verify.policy import VerificationPolicy

#: Claims every exchange checks itself: a publisher constrains workload claims instead.
_STANDARD = ("iss", "aud", "exp", "iat", "nbf", "jti")


class OIDCConfig(KindConfig):
    claims: dict[str, str] = Field(
        description="A claim the token must carry: an exact value, or a pattern with * (within a / or : "
        "segment) and ** (across), after at least two literal segments (README: Claim and subject "
        "patterns; repeatable).",
        json_schema_extra=cli(flag="--claim"),
    )
    subject: str | None = Field(
        None,
        description="The SAN its PEP 740 signing certificates carry (exact or a pattern, as --claim); "
        "without it the publisher cannot attest.",
    )

    @field_validator("claims")
    @classmethod
    def _claims(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if not value:
            raise ValueError("a generic OIDC publisher needs at least one claim constraint (e.g. sub=...)")
        for name, pattern in value.items():
            if not name or not pattern:
                raise ValueError("claim constraints are NAME=VALUE pairs with non-empty names and values")
            if name in _STANDARD:
                raise ValueError(f"{name!r} is checked by every exchange; constrain workload claims instead")
            if registering(info):
                check_pattern(pattern, f"--claim {name}")
        return dict(sorted(value.items()))

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and registering(info):
            check_pattern(value, "--subject")
        return value

    def invalid_patterns(self) -> list[str]:
        """Stored patterns outside today's language (publishers registered before it)."""
        bad = []
        for name, pattern in [*self.claims.items(), *([("subject", self.subject)] if self.subject else [])]:
            try:
                compile_pattern(pattern)
            except PatternError:
                bad.append(f"{name}={pattern}")
        return bad


def _claim_text(value: Any) -> str:
    """A claim as the text a pattern is matched against (JSON true/false as written)."""
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else str(value)


def _check_claims(constraints: Mapping[str, str], claims: Claims) -> None:
    for name, written in constraints.items():
        try:
            pattern = compile_pattern(written)
        except PatternError as exc:
            raise Mismatch(
                f"the publisher's claim pattern {name}={written!r} is no longer accepted ({exc}); "
                "re-register the publisher"
            ) from None
        value = claims.get(name)
        if value is None or not pattern.matches(_claim_text(value)):
            raise Mismatch(f"claim {name!r} is {value!r}, which does not match {written!r}")


@dataclass(frozen=True)
class OIDC(IdentityBase):
    """Any OIDC issuer an admin trusts. ``subject`` is what the signing certificate's SAN must
    match (a pattern: ``assay.identities.patterns``); ``claims`` are the token constraints used
    when minting (informative here: a certificate carries the subject, not the claims)."""

    kind: ClassVar[str] = "OIDC"
    required: ClassVar[tuple[str, ...]] = ("issuer", "subject")
    uncertified: ClassVar[tuple[str, ...]] = ("claims",)
    issuer: str
    subject: str
    claims: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def to_publisher(self) -> dict[str, Any]:
        return {"kind": self.kind, "issuer": self.issuer, "subject": self.subject, "claims": dict(self.claims)}

    def policy(self) -> VerificationPolicy:
        return IssuerAndSubjectPolicy(issuer=self.issuer, subject=self.subject)

    def summary(self) -> str:
        return f"OIDC {self.issuer} subject {self.subject}"

    def proposal(self) -> Identity:
        return OIDC(issuer=self.issuer, subject=self.subject)  # the claims are informative

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> Identity:
        claims = block.get("claims") or {}
        if not isinstance(claims, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in claims.items()
        ):
            raise IdentityError("OIDC publisher 'claims' must map names to strings")
        issuer, subject = require_field(block, "issuer", cls.kind), require_field(block, "subject", cls.kind)
        # A subject outside the pattern language (a shell glob, or no literal namespace) would
        # accept certificates nobody reviewed: refused here, as an unusable block.
        try:
            compile_pattern(subject)
        except PatternError as exc:
            raise IdentityError(f"OIDC publisher subject: {exc}") from None
        return OIDC(issuer=issuer, subject=subject, claims=dict(claims))


class OIDCKind(PublisherKind[OIDCConfig]):
    name = "oidc"
    pep740_kind = "OIDC"
    help = "Any OIDC issuer the admin trusts, matched on claim constraints."
    Config = OIDCConfig
    stored = ("sub",)

    def check(self, config: OIDCConfig, claims: Claims, issuer: str) -> None:
        # The claim table is the admin's: one row per --claim.
        _check_claims(config.claims, claims)

    def identifies(self, config: OIDCConfig, claims: Claims, issuer: str) -> bool:
        # Without an indexed selector, ``sub`` (the OIDC subject: which workload) identifies
        # the token; a publisher that does not constrain it identifies no one in particular.
        # Matched through the same check, so this follows whatever its pattern rules are.
        if "sub" not in config.claims:
            return False
        try:
            _check_claims({"sub": config.claims["sub"]}, claims)
        except Mismatch:
            return False
        return True

    def stored_claim_names(self, config: OIDCConfig) -> tuple[str, ...]:
        return ("sub", *config.claims)

    def identity(self, config: OIDCConfig, issuer: str) -> OIDC | None:
        if not config.subject:
            return None
        return OIDC(issuer=issuer, subject=config.subject, claims=dict(config.claims))

    def describe(self, config: OIDCConfig) -> str:
        constraints = " ".join(f"{k}={v}" for k, v in config.claims.items())
        subject = f" subject={config.subject}" if config.subject else ""
        bad = config.invalid_patterns()
        warning = f" [INVALID PATTERN, never matches: {', '.join(bad)}]" if bad else ""
        return constraints + subject + warning
