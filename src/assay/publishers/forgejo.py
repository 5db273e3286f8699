"""Forgejo / Gitea Actions (not on PyPI): GitHub's claim names (``assay.publishers.github``),
workflows in .forgejo/workflows (Forgejo also reads .github/workflows), the instance's own
issuer ``https://HOST/api/actions``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from assay.publishers.base import origin
from assay.publishers.github import ActionsOnInstance, GitHubLikeKind, github_claim_checks
from assay.publishers.github_enterprise import InstanceConfig

_DIRS = (".forgejo/workflows", ".github/workflows")


@dataclass(frozen=True)
class Forgejo(ActionsOnInstance):
    """Forgejo (or Gitea) Actions (issuer ``https://HOST/api/actions``); workflows live in
    .forgejo/workflows/, or .github/workflows/, which Forgejo also reads."""

    kind: ClassVar[str] = "Forgejo"
    label: ClassVar[str] = "Forgejo"
    issuer_path: ClassVar[str] = "/api/actions"
    workflow_dirs: ClassVar[tuple[str, ...]] = _DIRS


class ForgejoKind(GitHubLikeKind[InstanceConfig]):
    name = "forgejo"
    pep740_kind = "Forgejo"
    help = "Forgejo or Gitea Actions (needs --issuer https://HOST/api/actions)."
    Config = InstanceConfig
    # Forgejo's tokens carry repository and owner but not always the owner id.
    required = ("repository", "repository_owner")
    claim_checks = github_claim_checks(_DIRS)

    def prepare(self, raw: dict[str, Any], issuer: str) -> dict[str, Any]:
        return {"instance": origin(issuer), **raw}  # Forgejo's issuer is https://HOST/api/actions

    def identity(self, config: InstanceConfig, issuer: str) -> Forgejo:
        return Forgejo(
            instance=config.instance,
            repository=config.repository,
            workflow=config.workflow,
            environment=config.environment,
            issuer=issuer,
        )
