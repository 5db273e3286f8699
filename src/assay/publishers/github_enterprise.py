"""GitHub Actions on a GitHub Enterprise Server instance (not on PyPI): GitHub's claims and
rules (``assay.publishers.github``), the instance's own issuer ``https://HOST/_services/token``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, field_validator

from assay.publishers.base import cli, https_url, origin
from assay.publishers.github import ActionsOnInstance, GitHubConfig, GitHubLikeKind


class InstanceConfig(GitHubConfig):
    instance: str = Field(
        description="The instance's https URL (default: from the issuer).", json_schema_extra=cli(required=False)
    )

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        return https_url(value, "instance")


@dataclass(frozen=True)
class GitHubEnterprise(ActionsOnInstance):
    """GitHub Actions on a GitHub Enterprise Server instance (issuer ``https://HOST/_services/token``)."""

    kind: ClassVar[str] = "GitHubEnterprise"
    label: ClassVar[str] = "GitHub Enterprise"
    issuer_path: ClassVar[str] = "/_services/token"
    workflow_dirs: ClassVar[tuple[str, ...]] = (".github/workflows",)


class GitHubEnterpriseKind(GitHubLikeKind[InstanceConfig]):
    name = "github-enterprise"
    pep740_kind = "GitHubEnterprise"
    help = "GitHub Actions on GitHub Enterprise Server (needs --issuer https://HOST/_services/token)."
    Config = InstanceConfig

    def prepare(self, raw: dict[str, Any], issuer: str) -> dict[str, Any]:
        # GHES's issuer is https://HOST/_services/token; the instance is its origin.
        return {"instance": origin(issuer), **raw}

    def identity(self, config: InstanceConfig, issuer: str) -> GitHubEnterprise:
        return GitHubEnterprise(
            instance=config.instance,
            repository=config.repository,
            workflow=config.workflow,
            environment=config.environment,
            issuer=issuer,
        )
