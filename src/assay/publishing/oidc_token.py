"""Verifying a CI job's OIDC token (a JWT) before anything is minted for it.

The rules (PyPI's, tightened where the issue asks):

* the token is at most ``MAX_TOKEN_BYTES`` and is a compact JWS;
* its unverified ``iss`` picks a trusted issuer from the allow-list; anything else is refused;
* the header must name a ``kid``, and its ``alg`` must be one the issuer is pinned to (RS256,
  ES256, ...); ``none`` and HMAC algorithms are never accepted, so a public key can never be
  used as an HMAC secret;
* the signature is checked with that issuer's key (never with another issuer's);
* ``iss``, ``aud``, ``iat`` and ``exp`` are required, ``nbf`` is honoured, with a leeway of
  ``LEEWAY`` seconds (PyPI uses 30; at most 60);
* ``aud`` must be exactly our audience string: a list is refused, even one containing it
  (PyJWT's ``strict_aud``; PyPI's rule since pypi/warehouse#13887);
* the token's lifetime, ``exp - iat``, is at most the issuer's ``max_token_age`` (default two
  hours, an assay rule from issue 10): a CI job's token lives minutes (GitHub's 5, GitLab's
  the job's timeout), so a token made to live for days is one to keep and replay;
* an issuer is named without a trailing ``/`` (``issuer add`` strips it), and a token's ``iss``
  with one trailing ``/`` is the same issuer: OpenID Connect Discovery 1.0 §4 appends the
  well-known path after removing it, and some providers' ``iss`` keep it. Only that ``/`` goes, so
  ``https://ci.example.com/`` is ``https://ci.example.com`` but ``https://ci.example.com.evil``
  and ``https://ci.example.com//`` are other issuers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jwt

from assay.publishing.keys import KeyLookupError, KeyStore, shown
from assay.storage.models import DEFAULT_MAX_TOKEN_AGE

MAX_TOKEN_BYTES = 16 * 1024
LEEWAY = 30
#: Algorithms an issuer may be pinned to: asymmetric only.
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"})


#: PyPI's error codes for a refused token exchange (warehouse ``oidc/views.py``), which clients
#: show and ``assay.web.refusals`` audits as the reason.
ExchangeRefusal = Literal[
    "invalid-payload", "invalid-token", "invalid-publisher", "invalid-pending-publisher", "invalid-reuse-token"
]


class TokenRejected(Exception):
    """``code`` is the PyPI error code (invalid-payload, invalid-token, ...)."""

    def __init__(self, code: ExchangeRefusal, description: str) -> None:
        super().__init__(description)
        self.code: ExchangeRefusal = code
        self.description = description


@dataclass(frozen=True)
class TrustedIssuer:
    url: str
    jwks_source: str | None
    algorithms: tuple[str, ...]
    max_token_age: int = DEFAULT_MAX_TOKEN_AGE


def normalize_issuer(iss: str) -> str:
    """The issuer URL a token's ``iss`` names: one trailing ``/`` dropped (module docstring)."""
    return iss.removesuffix("/")


@dataclass(frozen=True)
class VerifiedToken:
    issuer: str
    claims: dict[str, Any]


def unverified_issuer(token: str) -> str:
    """The ``iss`` claim, read before any verification (only to pick the issuer), normalized."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenRejected("invalid-payload", f"token is larger than {MAX_TOKEN_BYTES} bytes")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenRejected("invalid-payload", "malformed JWT") from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise TokenRejected("invalid-payload", "malformed JWT: no issuer (iss) claim")
    return normalize_issuer(issuer)


def verify(token: str, *, issuer: TrustedIssuer, audience: str, keys: KeyStore) -> VerifiedToken:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("invalid-payload", "malformed JWT header") from None
    alg = header.get("alg")
    if alg not in issuer.algorithms or alg not in ALLOWED_ALGORITHMS:
        raise TokenRejected(
            "invalid-token",
            f"malformed or invalid token: algorithm {shown(alg)} is not accepted from this issuer "
            f"(pinned to {', '.join(issuer.algorithms)})",
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("invalid-token", "malformed or invalid token: no key id (kid) in the header")
    try:
        key = keys.key(issuer.url, issuer.jwks_source, kid)
    except KeyLookupError as exc:
        raise TokenRejected("invalid-token", f"malformed or invalid token: {exc}") from None
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=audience,
            issuer=[issuer.url, issuer.url + "/"],
            leeway=LEEWAY,
            options={"require": ["iss", "aud", "iat", "exp"], "strict_aud": True, "verify_iat": True},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRejected("invalid-token", "malformed or invalid token: the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenRejected(
            "invalid-token", "malformed or invalid token: the token is not yet valid (nbf/iat)"
        ) from None
    except jwt.InvalidAudienceError:
        raise TokenRejected(
            "invalid-token",
            f"malformed or invalid token: the audience must be exactly {audience!r} (a single string)",
        ) from None
    except jwt.InvalidIssuerError:
        raise TokenRejected("invalid-token", "malformed or invalid token: issuer mismatch") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRejected("invalid-token", f"malformed or invalid token: missing claim {exc.claim!r}") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("invalid-token", "malformed or invalid token: bad signature") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected("invalid-token", f"malformed or invalid token: {exc}") from None
    lifetime = int(claims["exp"]) - int(claims["iat"])  # PyJWT checked both are integers
    if lifetime > issuer.max_token_age:
        raise TokenRejected(
            "invalid-token",
            f"malformed or invalid token: it is valid for {lifetime} s (exp - iat), longer than the "
            f"{issuer.max_token_age} s this issuer's tokens may live",
        )
    return VerifiedToken(issuer.url, claims)
