"""The publisher kinds and their ``publisher`` blocks (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from assay.identities.patterns import PatternError, compile_pattern

if TYPE_CHECKING:
    from sigstore.verify.policy import VerificationPolicy

# pypi-attestations and sigstore are imported where a policy is built: they take most of a
# second to import, and most commands that know about identities never verify anything.

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_COM = "https://gitlab.com"
GOOGLE_ISSUER = "https://accounts.google.com"
CIRCLECI_ISSUER = "https://oidc.circleci.com"


class IdentityError(ValueError):
    """A publisher block or identity description that cannot be used; says what is wrong."""


class Identity(Protocol):
    kind: ClassVar[str]

    def to_publisher(self) -> dict[str, Any]: ...
    def policy(self) -> VerificationPolicy: ...
    def summary(self) -> str: ...


def _pypi_attestations() -> Any:
    import pypi_attestations

    return pypi_attestations


def _policy_of(publisher: Any) -> VerificationPolicy:
    """The sigstore policy of a pypi-attestations publisher model."""
    return cast("VerificationPolicy", publisher._as_policy())


def _strip(url: str) -> str:
    return url.rstrip("/")


def _require(block: dict[str, Any], key: str, kind: str) -> str:
    value = block.get(key)
    if not isinstance(value, str) or not value:
        raise IdentityError(f"{kind} publisher needs a non-empty string {key!r}")
    return value


def _optional(block: dict[str, Any], key: str) -> str | None:
    value = block.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IdentityError(f"publisher field {key!r} must be a string")
    return value


@dataclass(frozen=True)
class GitHub:
    """GitHub Actions on github.com (PyPI's "GitHub" kind)."""

    kind: ClassVar[str] = "GitHub"
    repository: str  # owner/name
    workflow: str  # file name under .github/workflows/
    environment: str | None = None

    def to_publisher(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "repository": self.repository,
            "workflow": self.workflow,
            "environment": self.environment,
        }

    def policy(self) -> VerificationPolicy:
        return _policy_of(_pypi_attestations().GitHubPublisher(repository=self.repository, workflow=self.workflow))

    def summary(self) -> str:
        env = f" (environment {self.environment})" if self.environment else ""
        return f"GitHub {self.repository} {self.workflow}{env}"


@dataclass(frozen=True)
class _ActionsOnInstance:
    """GitHub-style Actions on a self-hosted instance: the instance is its own OIDC issuer (by
    default ``<instance><issuer_path>``), and its certificates name repositories and workflow
    files on that instance."""

    kind: ClassVar[str]
    label: ClassVar[str]
    issuer_path: ClassVar[str]
    workflow_dirs: ClassVar[tuple[str, ...]]
    instance: str  # https://host
    repository: str
    workflow: str  # a file name in one of workflow_dirs
    environment: str | None = None
    issuer: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "instance", _strip(self.instance))
        if not self.issuer:
            object.__setattr__(self, "issuer", self.instance + self.issuer_path)

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
        from assay.identities.policies import BuildConfigPolicy

        return BuildConfigPolicy(
            issuer=self.issuer,
            repository_uri=f"{self.instance}/{self.repository}",
            config_paths=[f"/{directory}/{self.workflow}" for directory in self.workflow_dirs],
        )

    def summary(self) -> str:
        return f"{self.label} {self.instance}/{self.repository} {self.workflow}"


@dataclass(frozen=True)
class GitHubEnterprise(_ActionsOnInstance):
    """GitHub Actions on a GitHub Enterprise Server instance (issuer ``https://HOST/_services/token``)."""

    kind: ClassVar[str] = "GitHubEnterprise"
    label: ClassVar[str] = "GitHub Enterprise"
    issuer_path: ClassVar[str] = "/_services/token"
    workflow_dirs: ClassVar[tuple[str, ...]] = (".github/workflows",)


@dataclass(frozen=True)
class Forgejo(_ActionsOnInstance):
    """Forgejo (or Gitea) Actions (issuer ``https://HOST/api/actions``); workflows live in
    .forgejo/workflows/, or .github/workflows/, which Forgejo also reads."""

    kind: ClassVar[str] = "Forgejo"
    label: ClassVar[str] = "Forgejo"
    issuer_path: ClassVar[str] = "/api/actions"
    workflow_dirs: ClassVar[tuple[str, ...]] = (".forgejo/workflows", ".github/workflows")


@dataclass(frozen=True)
class GitLab:
    """GitLab CI/CD, on gitlab.com or a self-managed instance."""

    kind: ClassVar[str] = "GitLab"
    repository: str  # namespace/project (namespaces may nest)
    workflow_filepath: str  # e.g. .gitlab-ci.yml
    environment: str | None = None
    instance: str = GITLAB_COM

    def __post_init__(self) -> None:
        object.__setattr__(self, "instance", _strip(self.instance))

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
        if self.instance == GITLAB_COM:
            return _policy_of(
                _pypi_attestations().GitLabPublisher(
                    repository=self.repository, workflow_filepath=self.workflow_filepath
                )
            )
        # A self-managed instance is its own OIDC issuer.
        from assay.identities.policies import BuildConfigPolicy

        return BuildConfigPolicy(
            issuer=self.instance,
            repository_uri=f"{self.instance}/{self.repository}",
            config_paths=[f"//{self.workflow_filepath}"],
        )

    def summary(self) -> str:
        where = "" if self.instance == GITLAB_COM else f" on {self.instance}"
        return f"GitLab {self.repository} {self.workflow_filepath}{where}"


@dataclass(frozen=True)
class Google:
    """A Google Cloud service account."""

    kind: ClassVar[str] = "Google"
    email: str
    subject: str | None = None  # the account's numeric id, when pinned

    def to_publisher(self) -> dict[str, Any]:
        return {"kind": self.kind, "email": self.email}

    def policy(self) -> VerificationPolicy:
        return _policy_of(_pypi_attestations().GooglePublisher(email=self.email))

    def summary(self) -> str:
        return f"Google {self.email}"


@dataclass(frozen=True)
class CircleCI:
    kind: ClassVar[str] = "CircleCI"
    project_id: str
    pipeline_definition_id: str
    vcs_origin: str | None = None
    vcs_ref: str | None = None

    def to_publisher(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "project_id": self.project_id,
            "pipeline_definition_id": self.pipeline_definition_id,
            "vcs_origin": self.vcs_origin,
            "vcs_ref": self.vcs_ref,
        }

    def policy(self) -> VerificationPolicy:
        return _policy_of(
            _pypi_attestations().CircleCIPublisher(
                project_id=self.project_id,
                pipeline_definition_id=self.pipeline_definition_id,
                vcs_origin=self.vcs_origin,
                vcs_ref=self.vcs_ref,
            )
        )

    def summary(self) -> str:
        return f"CircleCI project {self.project_id} pipeline {self.pipeline_definition_id}"


@dataclass(frozen=True)
class OIDC:
    """Any OIDC issuer an admin trusts. ``subject`` is what the signing certificate's SAN must
    match (a pattern: ``assay.identities.patterns``); ``claims`` are the token constraints used
    when minting (informative here: a certificate carries the subject, not the claims)."""

    kind: ClassVar[str] = "OIDC"
    issuer: str
    subject: str
    claims: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def to_publisher(self) -> dict[str, Any]:
        return {"kind": self.kind, "issuer": self.issuer, "subject": self.subject, "claims": dict(self.claims)}

    def policy(self) -> VerificationPolicy:
        from assay.identities.policies import IssuerAndSubjectPolicy

        return IssuerAndSubjectPolicy(issuer=self.issuer, subject=self.subject)

    def summary(self) -> str:
        return f"OIDC {self.issuer} subject {self.subject}"


KINDS: dict[str, type[Any]] = {
    cls.kind: cls for cls in (GitHub, GitHubEnterprise, GitLab, Google, CircleCI, Forgejo, OIDC)
}


#: Fields a publisher block must carry, per kind (the rest are optional).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "GitHub": ("repository", "workflow"),
    "GitHubEnterprise": ("instance", "repository", "workflow"),
    "GitLab": ("repository", "workflow_filepath"),
    "Google": ("email",),
    "CircleCI": ("project_id", "pipeline_definition_id"),
    "Forgejo": ("instance", "repository", "workflow"),
    "OIDC": ("issuer", "subject"),
}


def from_publisher(block: Any) -> Identity:
    """Parse a PEP 740 ``publisher`` block. Unknown extra keys (like ``claims: null`` in old
    PyPI responses) are ignored, as pypi-attestations does."""
    if not isinstance(block, dict):
        raise IdentityError("a publisher block must be a JSON object")
    kind = block.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None or not isinstance(kind, str):
        raise IdentityError(f"unknown publisher kind {kind!r}; known kinds: {', '.join(KINDS)}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name == "claims":
            claims = block.get("claims") or {}
            if not isinstance(claims, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in claims.items()
            ):
                raise IdentityError("OIDC publisher 'claims' must map names to strings")
            values["claims"] = dict(claims)
        elif f.name in _REQUIRED[kind]:
            values[f.name] = _require(block, f.name, kind)
        elif (value := _optional(block, f.name)) is not None:
            values[f.name] = value
    if kind == "OIDC":
        # A subject outside the pattern language (a shell glob, or no literal namespace) would
        # accept certificates nobody reviewed: refused here, as an unusable block.
        try:
            compile_pattern(values["subject"])
        except PatternError as exc:
            raise IdentityError(f"OIDC publisher subject: {exc}") from None
    identity: Identity = cls(**values)
    return identity
