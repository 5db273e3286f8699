"""A maintainer's own Sigstore identity (issue 14, item 3): a person signing a release from
their machine, not a CI workload.

PEP 740 lets an index define its own ``publisher`` kinds; assay's for a maintainer is::

    {"kind": "Maintainer", "issuer": "https://oidc.example.com", "email": "alice@example.com"}
    {"kind": "Maintainer", "issuer": "https://oidc.example.com", "subject": "https://id.example.com/alice"}

``issuer`` is the OIDC issuer Fulcio writes into the signing certificate (extension
1.3.6.1.4.1.57264.1.8, or the legacy .1.1); ``email`` is an RFC 822 SAN (what Fulcio issues for
an e-mail identity), ``subject`` any other SAN (a URI). Exactly one of the two. A tool that
knows only PyPI's kinds fails closed on it, as on assay's other own kinds.

Registered per project with ``assay admin maintainer add`` (``assay.admin.maintainers``); a
``.provenance.toml`` pin may name one (``kind = "Maintainer"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from assay.publishers.base import Identity, IdentityBase, IdentityError, optional_field, require_field

if TYPE_CHECKING:
    from sigstore.verify.policy import VerificationPolicy

#: The identity kinds a maintainer may be registered with (the ``maintainer_identities`` rows).
IDENTITY_KINDS = ("email", "subject")


def check_value(identity_kind: str, value: str) -> str:
    """A registered value, normalised (an e-mail's case is not significant to an OIDC provider's
    verified ``email`` claim, and Fulcio copies that claim), or ``IdentityError``."""
    if identity_kind not in IDENTITY_KINDS:
        raise IdentityError(f"a maintainer is an email or a subject, not {identity_kind!r}")
    value = value.strip()
    if not value:
        raise IdentityError(f"a maintainer's {identity_kind} must not be empty")
    if identity_kind == "email":
        if "@" not in value or any(c.isspace() for c in value):
            raise IdentityError(f"{value!r} is not an e-mail address")
        return value.lower()
    return value


@dataclass(frozen=True)
class Maintainer(IdentityBase):
    """A maintainer's Sigstore identity: issuer plus an e-mail or a subject (exact values)."""

    kind: ClassVar[str] = "Maintainer"
    required: ClassVar[tuple[str, ...]] = ("issuer",)
    pin_optional: ClassVar[tuple[str, ...]] = ("email", "subject")
    issuer: str
    email: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        if (self.email is None) == (self.subject is None):
            raise IdentityError("a Maintainer identity names exactly one of email or subject")

    @classmethod
    def of(cls, issuer: str, identity_kind: str, value: str) -> Maintainer:
        value = check_value(identity_kind, value)
        return cls(issuer=issuer, email=value) if identity_kind == "email" else cls(issuer=issuer, subject=value)

    @property
    def identity_kind(self) -> str:
        return "email" if self.email is not None else "subject"

    @property
    def value(self) -> str:
        return self.email if self.email is not None else str(self.subject)

    def to_publisher(self) -> dict[str, Any]:
        return {"kind": self.kind, "issuer": self.issuer, self.identity_kind: self.value}

    def policy(self) -> VerificationPolicy:
        from assay.publishers.policies import MaintainerPolicy

        return MaintainerPolicy(issuer=self.issuer, email=self.email, subject=self.subject)

    def summary(self) -> str:
        return f"maintainer {self.value} (issuer {self.issuer})"

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> Identity:
        issuer = require_field(block, "issuer", cls.kind)
        email, subject = optional_field(block, "email"), optional_field(block, "subject")
        if (email is None) == (subject is None):
            raise IdentityError("a Maintainer publisher names exactly one of email or subject")
        if email is not None:
            return cls(issuer=issuer, email=check_value("email", email))
        return cls(issuer=issuer, subject=check_value("subject", str(subject)))
