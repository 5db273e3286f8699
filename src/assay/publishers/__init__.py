"""Trusted Publisher kinds: one module per kind, each owning everything about it.

``base``          ``PublisherKind`` (typed ``Config``, claim table, lookup key, stored claims,
                  attestation identity, CLI options) and ``IdentityBase`` (PEP 740 publisher
                  block, Sigstore policy, ``.provenance.toml`` pin table)
``registry``      every kind by name and by PEP 740 kind; ``from_publisher``
``policies``      Sigstore policies for checks sigstore has no single class for (Build Config
                  URI at the certificate's own ref, SAN patterns)
``github``, ``github_enterprise``, ``forgejo``, ``gitlab``, ``google``, ``circleci``, ``oidc``
                  the kinds
``maintainer``    not a kind (no tokens are minted for it): a maintainer's own Sigstore
                  identity, PEP 740 ``{"kind": "Maintainer", ...}`` (issue 14, item 3)

The same identity objects serve the index (verifying uploads against the publisher that minted
the upload token) and the client (verifying against reviewed pins), so both sides agree on what
"this publisher" means. Kinds PyPI has (``GitHub``, ``GitLab`` on gitlab.com, ``Google``,
``CircleCI``) serialize as pypi-attestations does and check what its policies check (written
with sigstore's public policy classes). Kinds PyPI lacks add the keys they need (``instance``,
``issuer``); a tool that only knows PyPI's kinds then fails closed on them rather than checking
them against the wrong host.

Adding a kind: docs/architecture.md, "How to add a publisher kind".
"""

from assay.publishers.base import ConfigError, Identity, IdentityError, Mismatch, PublisherKind
from assay.publishers.circleci import CircleCI
from assay.publishers.forgejo import Forgejo
from assay.publishers.github import GitHub
from assay.publishers.github_enterprise import GitHubEnterprise
from assay.publishers.gitlab import GitLab
from assay.publishers.google import Google
from assay.publishers.oidc import OIDC
from assay.publishers.registry import KINDS, from_publisher, get_kind, identity_of

__all__ = [
    "KINDS",
    "OIDC",
    "CircleCI",
    "ConfigError",
    "Forgejo",
    "GitHub",
    "GitHubEnterprise",
    "GitLab",
    "Google",
    "Identity",
    "IdentityError",
    "Mismatch",
    "PublisherKind",
    "from_publisher",
    "get_kind",
    "identity_of",
]
