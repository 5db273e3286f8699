"""CircleCI (not yet on PyPI; pypi/warehouse#13888): a project and a pipeline definition,
optionally the VCS origin and ref, the identity pypi-attestations' CircleCI publisher names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from assay.publishers.base import ClaimCheck, Claims, Identity, IdentityBase, KindConfig, Mismatch, PublisherKind, text

if TYPE_CHECKING:
    from sigstore.verify.policy import VerificationPolicy

CIRCLECI_ISSUER = "https://oidc.circleci.com"
_CIRCLE = "oidc.circleci.com/"


class CircleCIConfig(KindConfig):
    project_id: str = Field(description="CircleCI project id (UUID).", min_length=1)
    pipeline_definition_id: str = Field(description="CircleCI pipeline definition id (UUID).", min_length=1)
    vcs_origin: str | None = Field(None, description="Require this VCS origin, e.g. github.com/OWNER/REPO.")
    vcs_ref: str | None = Field(None, description="Require this ref, e.g. refs/heads/main.")


def _equal(field: str, claim: str) -> ClaimCheck:
    def check(config: CircleCIConfig, claims: Claims, issuer: str) -> None:
        wanted = getattr(config, field)
        if wanted and text(claims, _CIRCLE + claim) != wanted:
            raise Mismatch(f"{_CIRCLE + claim} does not match the publisher's {field}")

    rule: Callable[[CircleCIConfig, Claims, str], None] = check
    return (_CIRCLE + claim, rule)


@dataclass(frozen=True)
class CircleCI(IdentityBase):
    kind: ClassVar[str] = "CircleCI"
    required: ClassVar[tuple[str, ...]] = ("project_id", "pipeline_definition_id")
    pin_optional: ClassVar[tuple[str, ...]] = ("vcs_origin", "vcs_ref")
    project_id: str
    pipeline_definition_id: str
    vcs_origin: str | None = None
    vcs_ref: str | None = None

    def policy(self) -> VerificationPolicy:
        from sigstore.verify import policy

        # The checks of pypi-attestations' CircleCI policy, with sigstore's public policies:
        # the issuer, the optional VCS origin (Source Repository URI) and ref, and the Build
        # Signer URI naming the project's pipeline definition.
        rules: list[VerificationPolicy] = [policy.OIDCIssuerV2(CIRCLECI_ISSUER)]
        if self.vcs_origin is not None:
            rules.append(policy.OIDCSourceRepositoryURI(self.vcs_origin))
        if self.vcs_ref is not None:
            rules.append(policy.OIDCSourceRepositoryRef(self.vcs_ref))
        rules.append(
            policy.OIDCBuildSignerURI(
                f"https://circleci.com/api/v2/projects/{self.project_id}/"
                f"pipeline-definitions/{self.pipeline_definition_id}"
            )
        )
        return policy.AllOf(rules)

    def summary(self) -> str:
        return f"CircleCI project {self.project_id} pipeline {self.pipeline_definition_id}"

    def proposal(self) -> Identity:
        # The project and pipeline definition, not the branch it last ran on.
        return CircleCI(project_id=self.project_id, pipeline_definition_id=self.pipeline_definition_id)


class CircleCIKind(PublisherKind[CircleCIConfig]):
    name = "circleci"
    pep740_kind = "CircleCI"
    help = "CircleCI (its issuer is https://oidc.circleci.com/org/<org-id>; pass it with --issuer)."
    Config = CircleCIConfig
    default_issuer = CIRCLECI_ISSUER
    required = (_CIRCLE + "project-id", _CIRCLE + "pipeline-definition-id")
    claim_checks: ClassVar[tuple[ClaimCheck, ...]] = (
        _equal("project_id", "project-id"),
        _equal("pipeline_definition_id", "pipeline-definition-id"),
        _equal("vcs_origin", "vcs-origin"),
        _equal("vcs_ref", "vcs-ref"),
    )
    identifying_claims = (_CIRCLE + "project-id",)
    stored = (
        _CIRCLE + "project-id",
        _CIRCLE + "pipeline-definition-id",
        _CIRCLE + "pipeline-id",
        _CIRCLE + "vcs-origin",
        _CIRCLE + "vcs-ref",
    )
    # CircleCI tokens carry no jti: each job gets one token per audience, as PyPI's
    # discussion of CircleCI (pypi/warehouse#13887) notes; tokens are still single-audience.
    requires_jti = False

    def match_key(self, config: CircleCIConfig) -> str:
        return config.project_id

    def claims_key(self, claims: Claims) -> str:
        return text(claims, _CIRCLE + "project-id")

    def identity(self, config: CircleCIConfig, issuer: str) -> CircleCI:
        return CircleCI(
            project_id=config.project_id,
            pipeline_definition_id=config.pipeline_definition_id,
            vcs_origin=config.vcs_origin,
            vcs_ref=config.vcs_ref,
        )
