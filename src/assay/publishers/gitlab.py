"""GitLab CI/CD on gitlab.com or a self-managed instance (the issuer is the instance), following
Warehouse's ``oidc/models/gitlab.py``. A self-managed instance is not on PyPI: its publisher
block adds ``instance`` (a tool knowing only PyPI's kinds then checks it against gitlab.com and
fails closed)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from assay.publishers.base import (
    ClaimCheck,
    Claims,
    IdentityBase,
    KindConfig,
    Mismatch,
    PublisherKind,
    RepositoryPin,
    cli,
    text,
)
from assay.publishers.policies import BuildConfigPolicy

if TYPE_CHECKING:
    from sigstore.verify.policy import VerificationPolicy

GITLAB_COM = "https://gitlab.com"

_GITLAB_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")


class GitLabConfig(KindConfig):
    repository: str = Field(description="NAMESPACE/PROJECT (namespaces may nest).")
    workflow_filepath: str = Field(
        description="The CI config file, e.g. .gitlab-ci.yml.", json_schema_extra=cli(flag="--workflow")
    )
    environment: str | None = Field(None, description="Require this environment (case-sensitive, as GitLab's).")

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not _GITLAB_PATH.match(value):
            raise ValueError(f"repository must be NAMESPACE/PROJECT (namespaces may nest), got {value!r}")
        return value

    @field_validator("workflow_filepath")
    @classmethod
    def _workflow(cls, value: str) -> str:
        if not value or value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"workflow must be the CI config file path, e.g. .gitlab-ci.yml, got {value!r}")
        return value


def _check_project(config: GitLabConfig, claims: Claims, issuer: str) -> None:
    path = text(claims, "project_path")
    if path.lower() != config.repository.lower():
        raise Mismatch(f"project_path is {path!r}, the publisher is for {config.repository!r}")


def _check_sub(config: GitLabConfig, claims: Claims, issuer: str) -> None:
    # Warehouse: the first two fields of sub must be project_path:<namespace/project>.
    sub = text(claims, "sub").split(":")
    if len(sub) < 2 or sub[0] != "project_path" or sub[1].lower() != config.repository.lower():
        raise Mismatch("sub does not name the publisher's project")


def _check_config_ref(config: GitLabConfig, claims: Claims, issuer: str) -> None:
    # ci_config_ref_uri = <instance host>/<namespace>/<project>//<config path>@<ref_path or sha>
    host = urlsplit(issuer).netloc
    path, ref_path, sha = text(claims, "project_path"), text(claims, "ref_path"), text(claims, "sha")
    expected = {f"{host}/{path}//{config.workflow_filepath}@{suffix}" for suffix in (ref_path, sha)}
    got = text(claims, "ci_config_ref_uri")
    if got not in expected:
        raise Mismatch(f"ci_config_ref_uri ({got}) is not the publisher's {config.workflow_filepath!r}")


def _check_environment(config: GitLabConfig, claims: Claims, issuer: str) -> None:
    wanted = config.environment
    # GitLab environments are compared case-sensitively (Warehouse).
    if wanted and text(claims, "environment") != wanted:
        raise Mismatch(f"environment is {text(claims, 'environment') or 'none'!r}, the publisher requires {wanted!r}")


@dataclass(frozen=True)
class GitLab(IdentityBase):
    """GitLab CI/CD, on gitlab.com or a self-managed instance."""

    kind: ClassVar[str] = "GitLab"
    required: ClassVar[tuple[str, ...]] = ("repository", "workflow_filepath")
    pin_optional: ClassVar[tuple[str, ...]] = ("environment", "instance")
    #: GitLab's file is a "workflow" in every other kind's vocabulary.
    pin_aliases: ClassVar[dict[str, str]] = {"workflow": "workflow_filepath"}
    repository: str  # namespace/project (namespaces may nest)
    workflow_filepath: str  # e.g. .gitlab-ci.yml
    environment: str | None = None
    instance: str = field(default=GITLAB_COM)

    def __post_init__(self) -> None:
        object.__setattr__(self, "instance", self.instance.rstrip("/"))

    def pin_defaults(self) -> dict[str, str]:
        return {"instance": GITLAB_COM}

    def to_publisher(self) -> dict[str, Any]:
        block: dict[str, Any] = {
            "kind": self.kind,
            "repository": self.repository,
            "workflow_filepath": self.workflow_filepath,
            "environment": self.environment,
        }
        if self.instance != GITLAB_COM:
            block["instance"] = self.instance
        return block

    def policy(self) -> VerificationPolicy:
        # gitlab.com's issuer is https://gitlab.com; a self-managed instance is its own issuer.
        # The checks pypi-attestations' GitLab policy makes, for any instance.
        return BuildConfigPolicy(
            issuer=self.instance,
            repository_uri=f"{self.instance}/{self.repository}",
            config_paths=[f"//{self.workflow_filepath}"],
        )

    def summary(self) -> str:
        where = "" if self.instance == GITLAB_COM else f" on {self.instance}"
        return f"GitLab {self.repository} {self.workflow_filepath}{where}"


@dataclass(frozen=True)
class GitLabRepository(RepositoryPin):
    """Any pipeline of a gitlab.com project (the older ``.provenance.txt`` pins)."""

    kind: ClassVar[str] = "GitLab"
    issuer: ClassVar[str] = GITLAB_COM
    forge: ClassVar[str] = GITLAB_COM


class GitLabKind(PublisherKind[GitLabConfig]):
    """GitLab CI/CD on gitlab.com or any self-managed instance (the issuer is the instance)."""

    name = "gitlab"
    pep740_kind = "GitLab"
    help = "GitLab CI/CD on gitlab.com, or a self-managed instance (--issuer https://gitlab.example.com)."
    Config = GitLabConfig
    default_issuer = GITLAB_COM
    identifying_claims = ("project_path",)
    required = ("project_path", "ci_config_ref_uri", "ref_path", "sha")
    claim_checks: ClassVar[tuple[ClaimCheck, ...]] = (
        ("project_path", _check_project),
        ("sub", _check_sub),
        ("ci_config_ref_uri", _check_config_ref),
        ("environment", _check_environment),
    )
    stored = (
        "project_path",
        "ci_config_ref_uri",
        "ref_path",
        "sha",
        "pipeline_id",
        "job_id",
        "environment",
        "user_login",
    )

    def match_key(self, config: GitLabConfig) -> str:
        return config.repository.lower()

    def claims_key(self, claims: Claims) -> str:
        return text(claims, "project_path").lower()

    def environment_matches(self, config: GitLabConfig, claims: Claims) -> bool:
        return bool(config.environment) and config.environment == claims.get("environment")

    def identity(self, config: GitLabConfig, issuer: str) -> GitLab:
        return GitLab(
            repository=config.repository,
            workflow_filepath=config.workflow_filepath,
            environment=config.environment,
            instance=issuer,
        )

    def describe(self, config: GitLabConfig) -> str:
        env = f" environment={config.environment}" if config.environment else ""
        return f"{config.repository} workflow={config.workflow_filepath}{env}"
