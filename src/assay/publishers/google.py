"""A Google Cloud service account (Warehouse's ``oidc/models/google.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from assay.publishers.base import ClaimCheck, Claims, Identity, IdentityBase, KindConfig, Mismatch, PublisherKind, text

if TYPE_CHECKING:
    from sigstore.verify.policy import VerificationPolicy

GOOGLE_ISSUER = "https://accounts.google.com"


class GoogleConfig(KindConfig):
    email: str = Field(description="The service account's e-mail.")
    sub: str | None = Field(None, description="The service account's numeric id (optional).")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"email must be a service account e-mail, got {value!r}")
        return value

    @field_validator("sub", mode="before")
    @classmethod
    def _sub(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


def _check_email(config: GoogleConfig, claims: Claims, issuer: str) -> None:
    if text(claims, "email") != config.email:
        raise Mismatch(f"email is {text(claims, 'email')!r}, the publisher is for {config.email!r}")


def _check_verified(config: GoogleConfig, claims: Claims, issuer: str) -> None:
    if claims.get("email_verified") is not True:
        raise Mismatch("the token's e-mail is not verified")


def _check_sub(config: GoogleConfig, claims: Claims, issuer: str) -> None:
    if config.sub and text(claims, "sub") != config.sub:
        raise Mismatch("sub does not match the publisher's subject")


@dataclass(frozen=True)
class Google(IdentityBase):
    """A Google Cloud service account."""

    kind: ClassVar[str] = "Google"
    required: ClassVar[tuple[str, ...]] = ("email",)
    email: str
    subject: str | None = None  # the account's numeric id, when pinned

    def to_publisher(self) -> dict[str, Any]:
        return {"kind": self.kind, "email": self.email}

    def policy(self) -> VerificationPolicy:
        from sigstore.verify import policy

        # The certificate's SAN is the account's e-mail, from Google's issuer (as
        # pypi-attestations' Google policy checks).
        return policy.Identity(identity=self.email, issuer=GOOGLE_ISSUER)

    def summary(self) -> str:
        return f"Google {self.email}"

    def proposal(self) -> Identity:
        return Google(email=self.email)  # the service account, not its numeric id


class GoogleKind(PublisherKind[GoogleConfig]):
    name = "google"
    pep740_kind = "Google"
    help = "A Google Cloud service account."
    Config = GoogleConfig
    default_issuer = GOOGLE_ISSUER
    required = ("email",)
    claim_checks: ClassVar[tuple[ClaimCheck, ...]] = (
        ("email", _check_email),
        ("email_verified", _check_verified),
        ("sub", _check_sub),
    )
    requires_jti = False  # Google ID tokens carry no jti (Warehouse does not track them either)
    identifying_claims = ("email",)
    stored = ("email", "sub")

    def match_key(self, config: GoogleConfig) -> str:
        return config.email.lower()

    def claims_key(self, claims: Claims) -> str:
        return text(claims, "email").lower()

    def identity(self, config: GoogleConfig, issuer: str) -> Google:
        return Google(email=config.email, subject=config.sub)

    def describe(self, config: GoogleConfig) -> str:
        return config.email + (f" sub={config.sub}" if config.sub else "")
