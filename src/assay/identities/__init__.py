"""Publisher identities: who signed an attestation, in every form assay needs.

One class per publisher kind. Each knows

* its PEP 740 ``publisher`` block (what the index serves in a provenance object);
* the Sigstore verification policy a signing certificate must satisfy to count as that
  publisher (``policy()``);
* a one-line ``summary()`` for people.

The same objects serve the index (verifying uploads against the publisher that minted the
upload token) and the client (verifying against reviewed pins), so both sides agree on what
"this publisher" means.

Kinds PyPI has (``GitHub``, ``GitLab`` on gitlab.com, ``Google``, ``CircleCI``) serialize
exactly as pypi-attestations does and use its policies. Kinds PyPI lacks (self-managed GitLab,
``GitHubEnterprise``, ``Forgejo``, generic ``OIDC``) add the keys they need (``instance``,
``issuer``); a tool that only knows PyPI's kinds then fails closed on them rather than checking
them against the wrong host.
"""

from __future__ import annotations

from assay.identities.kinds import (
    OIDC,
    CircleCI,
    Forgejo,
    GitHub,
    GitHubEnterprise,
    GitLab,
    Google,
    Identity,
    IdentityError,
    from_publisher,
)

__all__ = [
    "OIDC",
    "CircleCI",
    "Forgejo",
    "GitHub",
    "GitHubEnterprise",
    "GitLab",
    "Google",
    "Identity",
    "IdentityError",
    "from_publisher",
]
