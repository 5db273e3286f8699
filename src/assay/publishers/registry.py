"""Every publisher kind, by its name and by its PEP 740 ``kind``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from assay.publishers.base import ConfigError, Identity, IdentityBase, IdentityError, PublisherKind
from assay.publishers.buildkite import Buildkite, BuildkiteKind
from assay.publishers.circleci import CircleCI, CircleCIKind
from assay.publishers.forgejo import Forgejo, ForgejoKind
from assay.publishers.github import GitHub, GitHubKind
from assay.publishers.github_enterprise import GitHubEnterprise, GitHubEnterpriseKind
from assay.publishers.gitlab import GitLab, GitLabKind
from assay.publishers.google import Google, GoogleKind
from assay.publishers.maintainer import Maintainer
from assay.publishers.oidc import OIDC, OIDCKind

#: The kinds, by name (``assay admin publisher add NAME``, the publisher rows' ``kind``).
KINDS: dict[str, PublisherKind[Any]] = {
    k.name: k
    for k in (
        GitHubKind(),
        GitHubEnterpriseKind(),
        GitLabKind(),
        GoogleKind(),
        CircleCIKind(),
        ForgejoKind(),
        OIDCKind(),
        BuildkiteKind(),
    )
}

#: Their attestation identities, by PEP 740 ``publisher.kind``.
IDENTITIES: dict[str, type[IdentityBase]] = {
    cls.kind: cls
    for cls in (
        GitHub,
        GitHubEnterprise,
        GitLab,
        Google,
        CircleCI,
        Forgejo,
        OIDC,
        Buildkite,
        # Issue 14, item 3: not a publisher kind (no tokens are minted for it), an identity a
        # project registers for maintainer-signed token uploads.
        Maintainer,
    )
}

assert {k.pep740_kind for k in KINDS.values()} | {Maintainer.kind} == set(IDENTITIES), "every kind has its identity"


def get_kind(name: str) -> PublisherKind[Any]:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown publisher kind {name!r}; use one of {', '.join(KINDS)}") from None


def identity_of(kind: str, config: Mapping[str, Any], issuer: str) -> Identity | None:
    """The attestation identity of a stored publisher row (its kind, config JSON and issuer)."""
    publisher_kind = get_kind(kind)
    return publisher_kind.identity(publisher_kind.load(config), issuer)


def from_publisher(block: Any) -> Identity:
    """Parse a PEP 740 ``publisher`` block."""
    if not isinstance(block, dict):
        raise IdentityError("a publisher block must be a JSON object")
    kind = block.get("kind")
    cls = IDENTITIES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise IdentityError(f"unknown publisher kind {kind!r}; known kinds: {', '.join(IDENTITIES)}")
    return cls.from_block(block)


def identity_class(kind: str) -> type[IdentityBase] | None:
    return IDENTITIES.get(kind)
