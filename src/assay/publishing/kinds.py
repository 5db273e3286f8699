"""Publisher kinds: how a verified OIDC token's claims are matched to a registered publisher.

Where PyPI has the kind, its rules are followed (Warehouse ``oidc/models/*``, summarised in
shared/research/trusted-publishing.md §3.2); kinds PyPI lacks reuse the closest provider's
rules. Each kind also says which claims are stored with the files its tokens upload, and which
attestation identity (``assay.identities``) its certificates must carry (PEP 740).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from assay.identities import (
    OIDC,
    CircleCI,
    Forgejo,
    GitHub,
    GitHubEnterprise,
    GitLab,
    Google,
    Identity,
)
from assay.identities.kinds import CIRCLECI_ISSUER, GITHUB_ISSUER, GITLAB_COM, GOOGLE_ISSUER
from assay.identities.patterns import PatternError, compile_pattern

Claims = Mapping[str, Any]


class ConfigError(ValueError):
    """A publisher configuration that cannot be used."""


class Mismatch(Exception):
    """The token's claims do not match this publisher; the message says which claim."""


def _text(claims: Claims, name: str) -> str:
    value = claims.get(name)
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _require_claims(claims: Claims, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not _text(claims, n)]
    if missing:
        raise Mismatch(f"the token lacks required claim(s): {', '.join(missing)}")


_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_GITLAB_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
_WORKFLOW_FILE = re.compile(r"^[^/\\]+\.ya?ml$")


def _https_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{what} must be an https:// URL, got {value!r}")
    return value.rstrip("/")


class Kind:
    """One kind of Trusted Publisher."""

    name: ClassVar[str]
    #: The OIDC issuer this kind's tokens come from when the admin does not say otherwise.
    default_issuer: ClassVar[str | None] = None
    #: Claims that must be present (besides the standard ones PyJWT checks).
    required: ClassVar[tuple[str, ...]] = ()
    #: Whether tokens of this kind carry a jti to be accepted once (Google ID tokens do not).
    requires_jti: ClassVar[bool] = True
    #: Claims recorded with each file uploaded under a token of this kind.
    stored: ClassVar[tuple[str, ...]] = ()
    #: The claim that says which workload a token is from (what ``claims_key`` reads): echoed
    #: back when no publisher is close enough to the token to report its reason for refusing.
    identifying_claim: ClassVar[str | None] = None
    #: Whether publishers of this kind pin the token's ``repository_owner_id`` (PyPI does for
    #: GitHub): recorded at the first exchange unless the admin gave it, required afterwards.
    pins_owner_id: ClassVar[bool] = False

    def normalize(self, config: dict[str, Any], issuer: str) -> dict[str, Any]:
        """Validate a configuration from the admin; returns the stored form."""
        raise NotImplementedError

    def match_key(self, config: Mapping[str, Any]) -> str:
        """An indexed value a token must reproduce (``claims_key``) to be a candidate."""
        return ""

    def claims_key(self, claims: Claims) -> str:
        return ""

    def check(self, config: Mapping[str, Any], claims: Claims, issuer: str) -> None:
        """Raise ``Mismatch`` unless ``claims`` satisfy ``config``."""
        raise NotImplementedError

    def identifies(self, config: Mapping[str, Any], claims: Claims, issuer: str) -> bool:
        """Whether the token is from this publisher's workload (its identifying claim matches,
        e.g. the same repository), so that why it was refused may be told to the token's
        holder. A publisher that does not identify the token is another project's business:
        its expected values are never echoed to a stranger (issue 10, item 4)."""
        key = self.match_key(config)
        return bool(key) and key == self.claims_key(claims)

    def identity(self, config: Mapping[str, Any], issuer: str) -> Identity | None:
        """The PEP 740 signing identity this publisher's attestations must carry."""
        return None

    def describe(self, config: Mapping[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(config.items()) if v)

    def environment_matches(self, config: Mapping[str, Any], claims: Claims) -> bool:
        return bool(config.get("environment")) and config.get("environment") == claims.get("environment")


# ---------------------------------------------------------------------------- GitHub family


class _GitHubLike(Kind):
    """GitHub Actions and the forges that copy its token format (GHES, Forgejo/Gitea)."""

    required: ClassVar[tuple[str, ...]] = ("repository", "repository_owner", "repository_owner_id")
    identifying_claim = "repository"
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
    #: Directories the workflow file may live in, relative to the repository.
    workflow_dirs: ClassVar[tuple[str, ...]] = (".github/workflows",)

    def normalize(self, config: dict[str, Any], issuer: str) -> dict[str, Any]:
        repository = str(config.get("repository") or "")
        workflow = str(config.get("workflow") or "")
        if not _REPO.match(repository):
            raise ConfigError(f"repository must be OWNER/NAME, got {repository!r}")
        if workflow.startswith((".github/workflows/", ".forgejo/workflows/")):
            workflow = workflow.rsplit("/", 1)[1]
        if not _WORKFLOW_FILE.match(workflow):
            raise ConfigError(f"workflow must be a workflow file name like release.yml, got {workflow!r}")
        out = {"repository": repository, "workflow": workflow, "environment": (config.get("environment") or None)}
        if config.get("owner_id"):
            out["owner_id"] = str(config["owner_id"])
        return out

    def match_key(self, config: Mapping[str, Any]) -> str:
        return str(config["repository"]).lower()

    def claims_key(self, claims: Claims) -> str:
        return _text(claims, "repository").lower()

    def check(self, config: Mapping[str, Any], claims: Claims, issuer: str) -> None:
        _require_claims(claims, self.required)
        repository = _text(claims, "repository")
        # Warehouse compares the repository case-insensitively (GitHub names are).
        if repository.lower() != str(config["repository"]).lower():
            raise Mismatch(f"repository is {repository!r}, the publisher is for {config['repository']!r}")
        # PyPI pins the owner's numeric id, which survives renames and defeats account
        # resurrection: the admin's --owner-id, or the id recorded at the publisher's first
        # exchange (the service passes it in as owner_id). Only the token's value is echoed.
        if config.get("owner_id") and _text(claims, "repository_owner_id") != config["owner_id"]:
            got = _text(claims, "repository_owner_id") or "none"
            raise Mismatch(
                f"repository_owner_id is {got!r}, not the owner id this publisher is pinned to (the "
                "repository's owner account changed: deleted and re-created, or transferred); an "
                "admin must register the publisher again"
            )
        # pypi/warehouse#19601: workflows triggered by pull_request_target run with the base
        # repository's credentials on attacker-controlled code; they may never publish.
        if _text(claims, "event_name") == "pull_request_target":
            raise Mismatch("workflows triggered by pull_request_target cannot publish")
        ref, sha = _text(claims, "ref"), _text(claims, "sha")
        if not ref and not sha:
            raise Mismatch("the token has neither a ref nor a sha claim")
        # The workflow: Warehouse matches job_workflow_ref (the workflow that runs the job)
        # against <repository>/.github/workflows/<file>@<ref or sha>. We also accept the same
        # match on workflow_ref (the top-level workflow), as pypi/warehouse#20083 proposes and
        # the OpenSSF guidance recommends: a release workflow that calls a reusable workflow
        # (even from another repository) then publishes as the caller, and the caller is also
        # what a PEP 740 certificate's Build Config URI names.
        expected = {
            f"{repository}/{directory}/{config['workflow']}@{suffix}"
            for directory in self.workflow_dirs
            for suffix in (ref, sha)
            if suffix
        }
        seen = [_text(claims, "job_workflow_ref"), _text(claims, "workflow_ref")]
        if not any(value in expected for value in seen if value):
            raise Mismatch(
                f"the workflow ({seen[0] or seen[1] or 'none'}) is not the publisher's {config['workflow']!r}"
            )
        self._check_environment(config, claims)

    def _check_environment(self, config: Mapping[str, Any], claims: Claims) -> None:
        wanted = config.get("environment")
        if not wanted:
            return  # no environment configured: any (or none) is accepted, as on PyPI
        got = _text(claims, "environment")
        # GitHub environment names are case-insensitive (Warehouse compares lower-cased).
        if got.lower() != str(wanted).lower():
            raise Mismatch(f"environment is {got or 'none'!r}, the publisher requires {wanted!r}")

    def environment_matches(self, config: Mapping[str, Any], claims: Claims) -> bool:
        wanted = config.get("environment")
        return bool(wanted) and str(wanted).lower() == _text(claims, "environment").lower()

    def describe(self, config: Mapping[str, Any]) -> str:
        env = f" environment={config['environment']}" if config.get("environment") else ""
        return f"{config['repository']} workflow={config['workflow']}{env}"


class GitHubKind(_GitHubLike):
    name = "github"
    default_issuer = GITHUB_ISSUER

    def identity(self, config: Mapping[str, Any], issuer: str) -> Identity:
        # Attestations from GitHub Actions are signed by public-good Fulcio for github.com
        # repositories, whatever issuer URL the token side uses (a stand-in in tests, an
        # enterprise's customised iss).
        return GitHub(
            repository=config["repository"], workflow=config["workflow"], environment=config.get("environment")
        )


class GitHubEnterpriseKind(_GitHubLike):
    name = "github-enterprise"

    def normalize(self, config: dict[str, Any], issuer: str) -> dict[str, Any]:
        out = super().normalize(config, issuer)
        instance = config.get("instance") or ""
        if not instance:
            # GHES's issuer is https://HOST/_services/token; the instance is its origin.
            parts = urlsplit(issuer)
            instance = f"{parts.scheme}://{parts.netloc}"
        out["instance"] = _https_url(str(instance), "instance")
        return out

    def identity(self, config: Mapping[str, Any], issuer: str) -> Identity:
        return GitHubEnterprise(
            instance=config["instance"],
            repository=config["repository"],
            workflow=config["workflow"],
            environment=config.get("environment"),
            issuer=issuer,
        )


class ForgejoKind(_GitHubLike):
    """Forgejo / Gitea Actions: GitHub's claim names, workflows in .forgejo/workflows (Forgejo
    also reads .github/workflows)."""

    name = "forgejo"
    # Forgejo's tokens carry repository and owner but not always the owner id.
    required = ("repository", "repository_owner")
    workflow_dirs = (".forgejo/workflows", ".github/workflows")

    def normalize(self, config: dict[str, Any], issuer: str) -> dict[str, Any]:
        out = super().normalize(config, issuer)
        instance = config.get("instance") or ""
        if not instance:
            parts = urlsplit(issuer)  # Forgejo's issuer is https://HOST/api/actions
            instance = f"{parts.scheme}://{parts.netloc}"
        out["instance"] = _https_url(str(instance), "instance")
        return out

    def identity(self, config: Mapping[str, Any], issuer: str) -> Identity:
        return Forgejo(
            instance=config["instance"],
            repository=config["repository"],
            workflow=config["workflow"],
            environment=config.get("environment"),
            issuer=issuer,
        )


# ---------------------------------------------------------------------------- GitLab


class GitLabKind(Kind):
    """GitLab CI/CD on gitlab.com or any self-managed instance (the issuer is the instance)."""

    name = "gitlab"
    default_issuer = GITLAB_COM
    identifying_claim = "project_path"
    required = ("project_path", "ci_config_ref_uri", "ref_path", "sha")
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

    def normalize(self, config: dict[str, Any], issuer: str) -> dict[str, Any]:
        repository = str(config.get("repository") or "")
        workflow = str(config.get("workflow_filepath") or config.get("workflow") or "")
        if not _GITLAB_PATH.match(repository):
            raise ConfigError(f"repository must be NAMESPACE/PROJECT (namespaces may nest), got {repository!r}")
        if not workflow or workflow.startswith("/") or ".." in workflow.split("/"):
            raise ConfigError(f"workflow must be the CI config file path, e.g. .gitlab-ci.yml, got {workflow!r}")
        return {
            "repository": repository,
            "workflow_filepath": workflow,
            "environment": (config.get("environment") or None),
        }

    def match_key(self, config: Mapping[str, Any]) -> str:
        return str(config["repository"]).lower()

    def claims_key(self, claims: Claims) -> str:
        return _text(claims, "project_path").lower()

    def check(self, config: Mapping[str, Any], claims: Claims, issuer: str) -> None:
        _require_claims(claims, self.required)
        path = _text(claims, "project_path")
        if path.lower() != str(config["repository"]).lower():
            raise Mismatch(f"project_path is {path!r}, the publisher is for {config['repository']!r}")
        # Warehouse: the first two fields of sub must be project_path:<namespace/project>.
        sub = _text(claims, "sub").split(":")
        if len(sub) < 2 or sub[0] != "project_path" or sub[1].lower() != str(config["repository"]).lower():
            raise Mismatch("sub does not name the publisher's project")
        # ci_config_ref_uri = <instance host>/<namespace>/<project>//<config path>@<ref_path or sha>
        host = urlsplit(issuer).netloc
        ref_path, sha = _text(claims, "ref_path"), _text(claims, "sha")
        expected = {f"{host}/{path}//{config['workflow_filepath']}@{suffix}" for suffix in (ref_path, sha)}
        got = _text(claims, "ci_config_ref_uri")
        if got not in expected:
            raise Mismatch(f"ci_config_ref_uri ({got}) is not the publisher's {config['workflow_filepath']!r}")
        wanted = config.get("environment")
        # GitLab environments are compared case-sensitively (Warehouse).
        if wanted and _text(claims, "environment") != wanted:
            raise Mismatch(
                f"environment is {_text(claims, 'environment') or 'none'!r}, the publisher requires {wanted!r}"
            )

    def identity(self, config: Mapping[str, Any], issuer: str) -> Identity:
        instance = issuer if issuer != GITLAB_COM else GITLAB_COM
        return GitLab(
            repository=config["repository"],
            workflow_filepath=config["workflow_filepath"],
            environment=config.get("environment"),
            instance=instance,
        )

    def describe(self, config: Mapping[str, Any]) -> str:
        env = f" environment={config['environment']}" if config.get("environment") else ""
        return f"{config['repository']} workflow={config['workflow_filepath']}{env}"


# ---------------------------------------------------------------------------- Google


class GoogleKind(Kind):
    name = "google"
    default_issuer = GOOGLE_ISSUER
    required = ("email",)
    requires_jti = False  # Google ID tokens carry no jti (Warehouse does not track them either)
    identifying_claim = "email"
    stored = ("email", "sub")

    def normalize(self, config: dict[str, Any], issuer: str) -> dict[str, Any]:
        email = str(config.get("email") or "")
        if "@" not in email:
            raise ConfigError(f"email must be a service account e-mail, got {email!r}")
        return {"email": email, "sub": (str(config["sub"]) if config.get("sub") else None)}

    def match_key(self, config: Mapping[str, Any]) -> str:
        return str(config["email"]).lower()

    def claims_key(self, claims: Claims) -> str:
        return _text(claims, "email").lower()

    def check(self, config: Mapping[str, Any], claims: Claims, issuer: str) -> None:
        _require_claims(claims, self.required)
        if _text(claims, "email") != config["email"]:
            raise Mismatch(f"email is {_text(claims, 'email')!r}, the publisher is for {config['email']!r}")
        if claims.get("email_verified") is not True:
            raise Mismatch("the token's e-mail is not verified")
        if config.get("sub") and _text(claims, "sub") != config["sub"]:
            raise Mismatch("sub does not match the publisher's subject")

    def identity(self, config: Mapping[str, Any], issuer: str) -> Identity:
        return Google(email=config["email"], subject=config.get("sub"))

    def describe(self, config: Mapping[str, Any]) -> str:
        return str(config["email"]) + (f" sub={config['sub']}" if config.get("sub") else "")


# ---------------------------------------------------------------------------- CircleCI

_CIRCLE = "oidc.circleci.com/"


class CircleCIKind(Kind):
    """CircleCI (not yet on PyPI; pypi/warehouse#13888): a project and a pipeline definition,
    optionally the VCS origin and ref, the identity pypi-attestations' CircleCI policy checks."""

    name = "circleci"
    default_issuer = CIRCLECI_ISSUER
    required = (_CIRCLE + "project-id", _CIRCLE + "pipeline-definition-id")
    identifying_claim = _CIRCLE + "project-id"
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

    def normalize(self, config: dict[str, Any], issuer: str) -> dict[str, Any]:
        project, pipeline = str(config.get("project_id") or ""), str(config.get("pipeline_definition_id") or "")
        if not project or not pipeline:
            raise ConfigError("a CircleCI publisher needs project_id and pipeline_definition_id")
        return {
            "project_id": project,
            "pipeline_definition_id": pipeline,
            "vcs_origin": config.get("vcs_origin") or None,
            "vcs_ref": config.get("vcs_ref") or None,
        }

    def match_key(self, config: Mapping[str, Any]) -> str:
        return str(config["project_id"])

    def claims_key(self, claims: Claims) -> str:
        return _text(claims, _CIRCLE + "project-id")

    def check(self, config: Mapping[str, Any], claims: Claims, issuer: str) -> None:
        _require_claims(claims, self.required)
        for field, claim in (
            ("project_id", "project-id"),
            ("pipeline_definition_id", "pipeline-definition-id"),
            ("vcs_origin", "vcs-origin"),
            ("vcs_ref", "vcs-ref"),
        ):
            wanted = config.get(field)
            if wanted and _text(claims, _CIRCLE + claim) != wanted:
                raise Mismatch(f"{_CIRCLE + claim} does not match the publisher's {field}")

    def identity(self, config: Mapping[str, Any], issuer: str) -> Identity:
        return CircleCI(
            project_id=config["project_id"],
            pipeline_definition_id=config["pipeline_definition_id"],
            vcs_origin=config.get("vcs_origin"),
            vcs_ref=config.get("vcs_ref"),
        )


# ---------------------------------------------------------------------------- generic OIDC


def _claim_text(value: Any) -> str:
    """A claim as the text a pattern is matched against (JSON true/false as written)."""
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else str(value)


class OIDCKind(Kind):
    """Any OIDC issuer the admin trusts, with claim constraints the admin writes: each names a
    claim and a pattern (an exact value, or ``*`` / ``**`` wildcards after a literal namespace:
    ``assay.identities.patterns``). ``subject`` (optional) is the SAN pattern a PEP 740 signing
    certificate from this publisher must carry; without it the publisher cannot attest.

    Publishers stored before the pattern language (shell globs) are not migrated: a stored
    pattern is compiled at each exchange, and one outside the language (``?``, ``[``, no
    literal namespace) never matches; the refusal names it, and ``publisher list`` flags it,
    so the admin re-registers the publisher. Patterns inside the language now match less than
    a glob did (``*`` stops at ``/`` and ``:``), never more."""

    name = "oidc"
    stored = ("sub",)

    def normalize(self, config: dict[str, Any], issuer: str) -> dict[str, Any]:
        claims = config.get("claims") or {}
        if not isinstance(claims, dict) or not claims:
            raise ConfigError("a generic OIDC publisher needs at least one claim constraint (e.g. sub=...)")
        for name, pattern in claims.items():
            if not isinstance(name, str) or not isinstance(pattern, str) or not name or not pattern:
                raise ConfigError("claim constraints are NAME=VALUE pairs with non-empty names and values")
            if name in ("iss", "aud", "exp", "iat", "nbf", "jti"):
                raise ConfigError(f"{name!r} is checked by every exchange; constrain workload claims instead")
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                raise ConfigError(f"--claim {name}: {exc}") from None
        subject = config.get("subject") or None
        if subject is not None:
            try:
                compile_pattern(str(subject))
            except PatternError as exc:
                raise ConfigError(f"--subject: {exc}") from None
        return {"claims": dict(sorted(claims.items())), "subject": subject}

    @staticmethod
    def invalid_patterns(config: Mapping[str, Any]) -> list[str]:
        """Stored patterns outside today's language (publishers registered before it)."""
        bad = []
        for name, pattern in config["claims"].items():
            try:
                compile_pattern(pattern)
            except PatternError:
                bad.append(f"{name}={pattern}")
        if config.get("subject"):
            try:
                compile_pattern(config["subject"])
            except PatternError:
                bad.append(f"subject={config['subject']}")
        return bad

    def check(self, config: Mapping[str, Any], claims: Claims, issuer: str) -> None:
        for name, text in config["claims"].items():
            try:
                pattern = compile_pattern(text)
            except PatternError as exc:
                raise Mismatch(
                    f"the publisher's claim pattern {name}={text!r} is no longer accepted ({exc}); "
                    "re-register the publisher"
                ) from None
            value = claims.get(name)
            if value is None or not pattern.matches(_claim_text(value)):
                raise Mismatch(f"claim {name!r} is {value!r}, which does not match {text!r}")

    def identifies(self, config: Mapping[str, Any], claims: Claims, issuer: str) -> bool:
        # Without an indexed selector, ``sub`` (the OIDC subject: which workload) identifies
        # the token; a publisher that does not constrain it identifies no one in particular.
        # Matched through ``check`` itself, so this follows whatever its pattern rules are.
        if "sub" not in config["claims"]:
            return False
        try:
            self.check({**config, "claims": {"sub": config["claims"]["sub"]}}, claims, issuer)
        except Mismatch:
            return False
        return True

    def identity(self, config: Mapping[str, Any], issuer: str) -> Identity | None:
        if not config.get("subject"):
            return None
        return OIDC(issuer=issuer, subject=config["subject"], claims=dict(config["claims"]))

    def describe(self, config: Mapping[str, Any]) -> str:
        constraints = " ".join(f"{k}={v}" for k, v in config["claims"].items())
        subject = f" subject={config['subject']}" if config.get("subject") else ""
        bad = self.invalid_patterns(config)
        warning = f" [INVALID PATTERN, never matches: {', '.join(bad)}]" if bad else ""
        return constraints + subject + warning

    def stored_claims(self, config: Mapping[str, Any]) -> tuple[str, ...]:
        return ("sub", *config["claims"])


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        GitHubKind(),
        GitHubEnterpriseKind(),
        GitLabKind(),
        GoogleKind(),
        CircleCIKind(),
        ForgejoKind(),
        OIDCKind(),
    )
}


def get_kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown publisher kind {name!r}; use one of {', '.join(KINDS)}") from None


def stored_claims(kind: Kind, config: Mapping[str, Any], claims: Claims, issuer: str) -> dict[str, Any]:
    """What is kept with every file uploaded under a token minted from ``claims``."""
    names = kind.stored_claims(config) if isinstance(kind, OIDCKind) else kind.stored
    kept = {name: claims[name] for name in names if claims.get(name) not in (None, "")}
    return {"issuer": issuer, "kind": kind.name, **kept}
