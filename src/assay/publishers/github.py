"""GitHub Actions on github.com (PyPI's "GitHub" kind), and the GitHub-style token format the
GitHub Enterprise Server and Forgejo/Gitea kinds share (``GitHubLikeKind``, ``ActionsOnInstance``).

Claims follow Warehouse's ``oidc/models/github.py`` (shared/research/trusted-publishing.md §3.2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import Field, field_validator

from assay.publishers.base import (
    ClaimCheck,
    Claims,
    IdentityBase,
    KindConfig,
    Mismatch,
    PublisherKind,
    RepositoryPin,
    text,
)
from assay.publishers.policies import BuildConfigPolicy

if TYPE_CHECKING:
    from sigstore.verify.policy import VerificationPolicy

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_COM = "https://github.com"

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_WORKFLOW_FILE = re.compile(r"^[^/\\]+\.ya?ml$")


class GitHubConfig(KindConfig):
    repository: str = Field(description="OWNER/NAME.")
    workflow: str = Field(description="The workflow file name, e.g. release.yml.")
    environment: str | None = Field(None, description="Require this deployment environment (case-insensitive).")
    owner_id: str | None = Field(
        None, description="The repository owner's numeric id (guards against account resurrection)."
    )

    omit_when_none: ClassVar[tuple[str, ...]] = ("owner_id",)

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not _REPO.match(value):
            raise ValueError(f"repository must be OWNER/NAME, got {value!r}")
        return value

    @field_validator("workflow")
    @classmethod
    def _workflow(cls, value: str) -> str:
        if value.startswith((".github/workflows/", ".forgejo/workflows/")):
            value = value.rsplit("/", 1)[1]
        if not _WORKFLOW_FILE.match(value):
            raise ValueError(f"workflow must be a workflow file name like release.yml, got {value!r}")
        return value

    @field_validator("owner_id", mode="before")
    @classmethod
    def _owner_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


G = TypeVar("G", bound=GitHubConfig)


def _check_repository(config: GitHubConfig, claims: Claims, issuer: str) -> None:
    repository = text(claims, "repository")
    # Warehouse compares the repository case-insensitively (GitHub names are).
    if repository.lower() != config.repository.lower():
        raise Mismatch(f"repository is {repository!r}, the publisher is for {config.repository!r}")


def _check_owner_id(config: GitHubConfig, claims: Claims, issuer: str) -> None:
    # PyPI pins the owner's numeric id, which survives renames and defeats account
    # resurrection: the admin's --owner-id, or the id recorded at the publisher's first
    # exchange (the service passes it in as owner_id). Only the token's value is echoed.
    if config.owner_id and text(claims, "repository_owner_id") != config.owner_id:
        got = text(claims, "repository_owner_id") or "none"
        raise Mismatch(
            f"repository_owner_id is {got!r}, not the owner id this publisher is pinned to (the "
            "repository's owner account changed: deleted and re-created, or transferred); an "
            "admin must register the publisher again"
        )


def _check_event(config: GitHubConfig, claims: Claims, issuer: str) -> None:
    # pypi/warehouse#19601: workflows triggered by pull_request_target run with the base
    # repository's credentials on attacker-controlled code; they may never publish.
    if text(claims, "event_name") == "pull_request_target":
        raise Mismatch("workflows triggered by pull_request_target cannot publish")


def _check_environment(config: GitHubConfig, claims: Claims, issuer: str) -> None:
    wanted = config.environment
    if not wanted:
        return  # no environment configured: any (or none) is accepted, as on PyPI
    got = text(claims, "environment")
    # GitHub environment names are case-insensitive (Warehouse compares lower-cased).
    if got.lower() != wanted.lower():
        raise Mismatch(f"environment is {got or 'none'!r}, the publisher requires {wanted!r}")


def _workflow_check(workflow_dirs: tuple[str, ...]) -> Callable[[GitHubConfig, Claims, str], None]:
    """The workflow check, for workflow files in ``workflow_dirs`` (relative to the repository)."""

    def check_workflow(config: GitHubConfig, claims: Claims, issuer: str) -> None:
        ref, sha = text(claims, "ref"), text(claims, "sha")
        if not ref and not sha:
            raise Mismatch("the token has neither a ref nor a sha claim")
        # The workflow: Warehouse matches job_workflow_ref (the workflow that runs the job)
        # against <repository>/.github/workflows/<file>@<ref or sha>. We also accept the same
        # match on workflow_ref (the top-level workflow), as pypi/warehouse#20083 proposes and
        # the OpenSSF guidance recommends: a release workflow that calls a reusable workflow
        # (even from another repository) then publishes as the caller, and the caller is also
        # what a PEP 740 certificate's Build Config URI names.
        repository = text(claims, "repository")
        expected = {
            f"{repository}/{directory}/{config.workflow}@{suffix}"
            for directory in workflow_dirs
            for suffix in (ref, sha)
            if suffix
        }
        seen = [text(claims, "job_workflow_ref"), text(claims, "workflow_ref")]
        if not any(value in expected for value in seen if value):
            raise Mismatch(f"the workflow ({seen[0] or seen[1] or 'none'}) is not the publisher's {config.workflow!r}")

    return check_workflow


def github_claim_checks(workflow_dirs: tuple[str, ...]) -> tuple[ClaimCheck, ...]:
    """GitHub's claim table (Warehouse ``GitHubPublisherMixin.__required_verifiable_claims__``
    and ``__optional_verifiable_claims__``), in the order the checks run."""
    return (
        ("repository", _check_repository),
        ("repository_owner_id", _check_owner_id),
        ("event_name", _check_event),
        ("job_workflow_ref", _workflow_check(workflow_dirs)),
        ("environment", _check_environment),
    )


class GitHubLikeKind(PublisherKind[G]):
    """GitHub Actions and the forges that copy its token format (GHES, Forgejo/Gitea)."""

    required: ClassVar[tuple[str, ...]] = ("repository", "repository_owner", "repository_owner_id")
    identifying_claims: ClassVar[tuple[str, ...]] = ("repository",)
    pins_owner_id = True
    stored = (
        "repository",
        "repository_owner_id",
        "workflow_ref",
        "job_workflow_ref",
        "ref",
        "sha",
        "run_id",
        "run_attempt",
        "environment",
        "event_name",
        "actor",
    )
    claim_checks = github_claim_checks((".github/workflows",))

    def with_owner_id(self, config: G, owner_id: str | None) -> G:
        return config.model_copy(update={"owner_id": owner_id}) if owner_id else config

    def owner_id(self, config: G) -> str | None:
        return config.owner_id

    def match_key(self, config: G) -> str:
        return config.repository.lower()

    def claims_key(self, claims: Claims) -> str:
        return text(claims, "repository").lower()

    def environment_matches(self, config: G, claims: Claims) -> bool:
        return bool(config.environment) and str(config.environment).lower() == text(claims, "environment").lower()

    def describe(self, config: G) -> str:
        env = f" environment={config.environment}" if config.environment else ""
        return f"{config.repository} workflow={config.workflow}{env}"


@dataclass(frozen=True)
class GitHub(IdentityBase):
    """GitHub Actions on github.com (PyPI's "GitHub" kind)."""

    kind: ClassVar[str] = "GitHub"
    required: ClassVar[tuple[str, ...]] = ("repository", "workflow")
    pin_optional: ClassVar[tuple[str, ...]] = ("environment",)
    repository: str  # owner/name
    workflow: str  # file name under .github/workflows/
    environment: str | None = None

    def policy(self) -> VerificationPolicy:
        # What pypi-attestations' GitHub policy checks, with sigstore's public policies (the
        # issuer, the Source Repository URI) plus the Build Config URI: the workflow file at
        # the certificate's own ref or digest.
        return BuildConfigPolicy(
            issuer=GITHUB_ISSUER,
            repository_uri=f"{GITHUB_COM}/{self.repository}",
            config_paths=[f"/.github/workflows/{self.workflow}"],
        )

    def summary(self) -> str:
        env = f" (environment {self.environment})" if self.environment else ""
        return f"GitHub {self.repository} {self.workflow}{env}"


@dataclass(frozen=True)
class GitHubRepository(RepositoryPin):
    """Any workflow of a github.com repository (the older ``.provenance.txt`` pins)."""

    kind: ClassVar[str] = "GitHub"
    issuer: ClassVar[str] = GITHUB_ISSUER
    forge: ClassVar[str] = GITHUB_COM


class GitHubKind(GitHubLikeKind[GitHubConfig]):
    name = "github"
    pep740_kind = "GitHub"
    help = "GitHub Actions."
    Config = GitHubConfig
    default_issuer = GITHUB_ISSUER

    def identity(self, config: GitHubConfig, issuer: str) -> GitHub:
        # Attestations from GitHub Actions are signed by public-good Fulcio for github.com
        # repositories, whatever issuer URL the token side uses (a stand-in in tests, an
        # enterprise's customised iss).
        return GitHub(repository=config.repository, workflow=config.workflow, environment=config.environment)


@dataclass(frozen=True)
class ActionsOnInstance(IdentityBase):
    """GitHub-style Actions on a self-hosted instance: the instance is its own OIDC issuer (by
    default ``<instance><issuer_path>``), and its certificates name repositories and workflow
    files on that instance."""

    label: ClassVar[str]
    issuer_path: ClassVar[str]
    workflow_dirs: ClassVar[tuple[str, ...]]
    required: ClassVar[tuple[str, ...]] = ("instance", "repository", "workflow")
    pin_optional: ClassVar[tuple[str, ...]] = ("environment", "issuer")
    instance: str  # https://host
    repository: str
    workflow: str  # a file name in one of workflow_dirs
    environment: str | None = None
    issuer: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "instance", self.instance.rstrip("/"))
        if not self.issuer:
            object.__setattr__(self, "issuer", self.instance + self.issuer_path)

    def pin_defaults(self) -> dict[str, str]:
        return {"issuer": self.instance + self.issuer_path}

    def to_publisher(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "instance": self.instance,
            "issuer": self.issuer,
            "repository": self.repository,
            "workflow": self.workflow,
            "environment": self.environment,
        }

    def policy(self) -> VerificationPolicy:
        return BuildConfigPolicy(
            issuer=self.issuer,
            repository_uri=f"{self.instance}/{self.repository}",
            config_paths=[f"/{directory}/{self.workflow}" for directory in self.workflow_dirs],
        )

    def summary(self) -> str:
        return f"{self.label} {self.instance}/{self.repository} {self.workflow}"
