"""API tokens: ``<prefix><id>_<secret>``, stored as the SHA-256 of the secret only.

The id is public (it names the token in the audit log and in ``token revoke``); the secret has
256 bits of entropy, so a plain SHA-256 is the right storage (a slow password hash buys nothing
against a random secret) and the comparison is constant-time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from assay.storage.models import ApiToken, utcnow

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


#: Why a token is refused, as the audit log and the revocation endpoint tell it apart.
TokenRefusal = Literal["invalid-token", "revoked-token", "expired-token"]


class TokenError(ValueError):
    """A credential was refused; the message is safe to show the client, ``code`` says why."""

    def __init__(self, message: str, code: TokenRefusal = "invalid-token") -> None:
        super().__init__(message)
        self.code: TokenRefusal = code


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, e.g. 30d, 12h, 15m")
    value, unit = int(match.group(1)), match.group(2)
    if value <= 0:
        raise ValueError(f"invalid duration {text!r}: must be positive")
    return dt.timedelta(seconds=value * _UNITS[unit])


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    id: str
    expires: dt.datetime | None


def issue(
    session: Session,
    *,
    prefix: str,
    kind: str,
    index_id: int,
    user_id: int | None = None,
    publisher_id: int | None = None,
    projects: list[str] | None = None,
    expires: dt.datetime | None = None,
    description: str = "",
    oidc_claims: dict[str, Any] | None = None,
    single_use: bool = False,
) -> IssuedToken:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            id=token_id,
            index_id=index_id,
            secret_sha256=_hash(secret),
            kind=kind,
            user_id=user_id,
            publisher_id=publisher_id,
            projects=projects,
            expires=expires,
            description=description,
            oidc_claims=oidc_claims,
            single_use=single_use,
        )
    )
    return IssuedToken(f"{prefix}{token_id}_{secret}", token_id, expires)


def split(token: str, prefix: str) -> tuple[str, str]:
    if not token.startswith(prefix):
        raise TokenError("Invalid API token: the token does not have this index's prefix.")
    body = token[len(prefix) :]
    token_id, sep, secret = body.partition("_")
    if not sep or not re.fullmatch(r"[0-9a-f]{16}", token_id) or not secret or len(secret) > 100:
        raise TokenError("Invalid API token: malformed token.")
    return token_id, secret


def verify(session: Session, token: str, prefix: str, *, now: dt.datetime | None = None) -> ApiToken:
    """Return the token's row, or raise ``TokenError`` saying (safely) why it is refused."""
    token_id, secret = split(token, prefix)
    row = session.get(ApiToken, token_id)
    # Compare against a dummy hash when the id is unknown, so timing does not tell whether an
    # id exists.
    expected = row.secret_sha256 if row is not None else _hash("-")
    if not hmac.compare_digest(expected, _hash(secret)) or row is None:
        raise TokenError("Invalid or non-existent authentication information.")
    now = now or utcnow()
    if row.revoked is not None:
        raise TokenError("This API token has been revoked.", "revoked-token")
    if row.expires is not None and row.expires <= now:
        raise TokenError("This API token has expired.", "expired-token")
    return row
