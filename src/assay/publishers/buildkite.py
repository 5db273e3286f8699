"""Buildkite pipelines, with the claims PyPI documents for Buildkite Trusted Publishing:
``organization_slug``, ``pipeline_slug``, and optionally ``build_branch`` or ``build_tag``; the
issuer is ``https://agent.buildkite.com`` and ``sub`` reads
``organization:ORG:pipeline:PIPELINE:ref:REF:commit:SHA:step:STEP``.

Attestation identity. Fulcio's Buildkite provider (issuer type ``buildkite-job``) puts one URI
SAN in the certificate, ``https://buildkite.com/ORG/PIPELINE``, and of the CI extensions only the
OIDC issuer (``1.3.6.1.4.1.57264.1.8``): there is no Source Repository or Build Config URI to
check. So a Buildkite identity is the issuer plus that SAN, checked with sigstore's public
policies. The branch or tag a publisher may require is a token rule only (the certificate does
not carry it). PEP 740 has no Buildkite publisher block; ours is ``{"kind": "Buildkite",
"issuer", "organization", "pipeline"}``, adding the issuer as the self-hosted kinds do, so a
tool that does not know the kind fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator, model_validator

from assay.publishers.base import (
    ClaimCheck,
    Claims,
    IdentityBase,
    IdentityError,
    KindConfig,
    Mismatch,
    PublisherKind,
    slug,
    text,
)

if TYPE_CHECKING:
    from sigstore.verify.policy import VerificationPolicy

BUILDKITE_ISSUER = "https://agent.buildkite.com"
#: Where Fulcio's Buildkite SANs point: ``<this>/<organization>/<pipeline>``.
BUILDKITE_WEB = "https://buildkite.com"


class BuildkiteConfig(KindConfig):
    organization: str = Field(description="The organization's slug (the organization_slug claim).")
    pipeline: str = Field(description="The pipeline's slug (the pipeline_slug claim).")
    branch: str | None = Field(None, description="Require builds of this branch (the build_branch claim).")
    tag: str | None = Field(None, description="Require builds of this tag (the build_tag claim).")

    @field_validator("organization", "pipeline")
    @classmethod
    def _slug(cls, value: str, info: Any) -> str:
        return slug(value, str(info.field_name))

    @model_validator(mode="after")
    def _branch_or_tag(self) -> BuildkiteConfig:
        if self.branch and self.tag:
            raise ValueError("give --branch or --tag, not both (a build is of a branch or of a tag)")
        return self


def _check_organization(config: BuildkiteConfig, claims: Claims, issuer: str) -> None:
    got = text(claims, "organization_slug")
    if got != config.organization:
        raise Mismatch(f"organization_slug is {got!r}, the publisher is for {config.organization!r}")


def _check_pipeline(config: BuildkiteConfig, claims: Claims, issuer: str) -> None:
    got = text(claims, "pipeline_slug")
    if got != config.pipeline:
        raise Mismatch(f"pipeline_slug is {got!r}, the publisher is for {config.pipeline!r}")


def _check_sub(config: BuildkiteConfig, claims: Claims, issuer: str) -> None:
    # The subject must name the same organization and pipeline (as GitLab's sub must name the
    # project): a token whose fields disagree is not from the workload it claims to be.
    if not text(claims, "sub").startswith(f"organization:{config.organization}:pipeline:{config.pipeline}:"):
        raise Mismatch("sub does not name the publisher's organization and pipeline")


def _check_branch(config: BuildkiteConfig, claims: Claims, issuer: str) -> None:
    if config.branch and text(claims, "build_branch") != config.branch:
        got = text(claims, "build_branch") or "none"
        raise Mismatch(f"build_branch is {got!r}, the publisher requires {config.branch!r}")


def _check_tag(config: BuildkiteConfig, claims: Claims, issuer: str) -> None:
    if config.tag and text(claims, "build_tag") != config.tag:
        got = text(claims, "build_tag") or "none"
        raise Mismatch(f"build_tag is {got!r}, the publisher requires {config.tag!r}")


@dataclass(frozen=True)
class Buildkite(IdentityBase):
    """A Buildkite pipeline (see the module docstring for what its certificates carry)."""

    kind: ClassVar[str] = "Buildkite"
    required: ClassVar[tuple[str, ...]] = ("organization", "pipeline")
    pin_optional: ClassVar[tuple[str, ...]] = ("issuer",)
    organization: str
    pipeline: str
    issuer: str = BUILDKITE_ISSUER

    def __post_init__(self) -> None:
        # Slugs cannot hold "/": otherwise organization "a/b" + pipeline "c" and "a" + "b/c"
        # would be two pins for one certificate SAN. A block from an index is checked too.
        for what in ("organization", "pipeline"):
            try:
                slug(getattr(self, what), what)
            except ValueError as exc:
                raise IdentityError(f"Buildkite publisher: {exc}") from None

    def pin_defaults(self) -> dict[str, str]:
        return {"issuer": BUILDKITE_ISSUER}

    def to_publisher(self) -> dict[str, Any]:
        return {"kind": self.kind, "issuer": self.issuer, "organization": self.organization, "pipeline": self.pipeline}

    @property
    def san(self) -> str:
        return f"{BUILDKITE_WEB}/{self.organization}/{self.pipeline}"

    def policy(self) -> VerificationPolicy:
        from sigstore.verify import policy

        return policy.AllOf([policy.OIDCIssuerV2(self.issuer), policy.Identity(identity=self.san)])

    def summary(self) -> str:
        return f"Buildkite {self.organization}/{self.pipeline}"


class BuildkiteKind(PublisherKind[BuildkiteConfig]):
    name = "buildkite"
    pep740_kind = "Buildkite"
    help = "A Buildkite pipeline (issuer https://agent.buildkite.com)."
    Config = BuildkiteConfig
    default_issuer = BUILDKITE_ISSUER
    required = ("organization_slug", "pipeline_slug", "sub")
    claim_checks: ClassVar[tuple[ClaimCheck, ...]] = (
        ("organization_slug", _check_organization),
        ("pipeline_slug", _check_pipeline),
        ("sub", _check_sub),
        ("build_branch", _check_branch),
        ("build_tag", _check_tag),
    )
    # Buildkite documents no jti claim (tokens live minutes, for one audience); one is still
    # accepted only once when a token carries it.
    requires_jti = False
    identifying_claims = ("organization_slug", "pipeline_slug")
    stored = (
        "sub",
        "organization_slug",
        "pipeline_slug",
        "build_number",
        "build_branch",
        "build_tag",
        "build_commit",
        "step_key",
        "job_id",
    )

    def match_key(self, config: BuildkiteConfig) -> str:
        return f"{config.organization}/{config.pipeline}".lower()

    def claims_key(self, claims: Claims) -> str:
        org, pipeline = text(claims, "organization_slug"), text(claims, "pipeline_slug")
        return f"{org}/{pipeline}".lower() if org and pipeline else ""

    def identity(self, config: BuildkiteConfig, issuer: str) -> Buildkite:
        return Buildkite(organization=config.organization, pipeline=config.pipeline, issuer=issuer)

    def describe(self, config: BuildkiteConfig) -> str:
        ref = f" branch={config.branch}" if config.branch else f" tag={config.tag}" if config.tag else ""
        return f"{config.organization}/{config.pipeline}{ref}"
