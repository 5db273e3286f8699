"""Sign-in for people (issue 15, item 4): an API token exchanged for a session cookie, and the
CSRF check every form passes.

- The session cookie ``assay_session`` holds a random secret; the database keeps only its
  SHA-256 (``storage.models.WebSession``), as it does for tokens. It is ``HttpOnly`` (no script
  may read it; the pages have none anyway), ``SameSite=Strict`` (never sent on a request another
  site starts) and ``Secure`` when the index is served over TLS. A session ends at sign-out, at
  ``session_lifetime``, or as soon as its token is revoked or expires.
- A session is one index's (issue 11's several indexes): it is made with a token of that index,
  its row carries the index's id and only that index's pages accept it, and its cookie is that
  index's own (``assay_session`` for the default index, ``assay_session_<name>`` for a named
  one, ``Path=/<name>/``), so signing in on one index neither signs you in on another nor
  replaces the other's session. The CSRF cookie is the site's (one origin, one check).
- CSRF (OWASP's "signed double-submit cookie" pattern, without the signature since the value is
  random and HttpOnly): every form carries a hidden ``csrf`` field equal to the ``assay_csrf``
  cookie (random, HttpOnly, SameSite=Strict). Another site can neither read nor set that cookie,
  so it cannot fill in the field. A POST whose field does not match, or whose ``Origin`` header
  (when sent; browsers send it on every POST) is not this index's, is refused with 403 before
  anything is read from the form.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from assay import audit
from assay.accounts import tokens
from assay.indexes import IndexRef
from assay.storage.models import ApiToken, User, WebSession, utcnow
from assay.ui.services import UIServices

SESSION_COOKIE = "assay_session"
CSRF_COOKIE = "assay_csrf"
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Viewer:
    """A signed-in person."""

    token_id: str
    user_id: int | None
    username: str | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _secure(svc: UIServices, request: Request) -> bool:
    return svc.settings.scheme == "https" or svc.base_url(request).startswith("https://")


def cookie_name(index: IndexRef) -> str:
    """The session cookie of ``index``. One name per index, not one name with several paths: a
    browser sends every cookie whose path matches (RFC 6265 5.4: ``/`` as well as ``/team/``
    under ``/team/``), and a server cannot tell same-named cookies apart."""
    return SESSION_COOKIE if index.is_default else f"{SESSION_COOKIE}_{index.name}"


def cookie_path(index: IndexRef) -> str:
    return index.prefix + "/"


def viewer(svc: UIServices, request: Request, index: IndexRef) -> Viewer | None:
    """The person signed in on ``index`` by this request, or None (no cookie, a session that
    ended, or a session of another index)."""
    secret = request.cookies.get(cookie_name(index))
    if not secret or len(secret) > 200:
        return None
    now = utcnow()
    with svc.db.read() as session:
        row = session.execute(
            sa.select(ApiToken.id, ApiToken.user_id, User.username)
            .select_from(WebSession)
            .join(ApiToken, WebSession.token_id == ApiToken.id)
            .outerjoin(User, ApiToken.user_id == User.id)
            .where(
                WebSession.secret_sha256 == _digest(secret),
                WebSession.index_id == index.id,
                WebSession.expires > now,
                ApiToken.revoked.is_(None),
                sa.or_(ApiToken.expires.is_(None), ApiToken.expires > now),
            )
        ).one_or_none()
    return Viewer(row.id, row.user_id, row.username) if row else None


class SignInError(Exception):
    """A refused sign-in; ``code`` says why, for the audit log."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def sign_in(svc: UIServices, index: IndexRef, token: str, remote: str | None) -> tuple[str, dt.datetime]:
    """Exchange an API token of ``index`` for a new session there: returns the cookie's secret
    and its expiry. Only a person's token (kind "user") signs in; a Trusted Publisher's minted
    token is for one CI job's uploads."""
    token = token.strip()
    with svc.db.write() as session:
        try:
            row = tokens.verify(session, token, svc.settings.token_prefix)
        except tokens.TokenError as exc:
            raise SignInError(str(exc), exc.code) from None
        if row.index_id != index.id:
            raise SignInError(f"This API token is not valid on the index {index.name!r}.", "wrong-index")
        if row.kind != "user":
            raise SignInError(
                "Only a person's API token can sign in (this one was minted for a Trusted Publisher).", "not-a-person"
            )
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + dt.timedelta(seconds=svc.settings.session_lifetime)
        if row.expires is not None:
            expires = min(expires, row.expires)
        session.add(
            WebSession(
                secret_sha256=_digest(secret), token_id=row.id, index_id=row.index_id, created=now, expires=expires
            )
        )
        _prune(session, now)
        username = session.execute(sa.select(User.username).where(User.id == row.user_id)).scalar()
        audit.record(session, actor=f"user:{username}", action="web-sign-in", token_id=row.id, remote_addr=remote)
    return secret, expires


def record_refusal(svc: UIServices, exc: SignInError, remote: str | None) -> None:
    """A refused sign-in goes to the audit log as refused uploads do (counted per source and
    reason within a window: ``audit.record_refusal``)."""
    audit.record_refusal(svc.db, action="web-sign-in-refused", reason=exc.code, actor="anonymous", remote_addr=remote)


def _prune(session: Session, now: dt.datetime) -> None:
    # Ended sessions are deleted as new ones start: the table holds live sessions only.
    session.execute(sa.delete(WebSession).where(WebSession.expires <= now))


def sign_out(svc: UIServices, request: Request, index: IndexRef) -> None:
    secret = request.cookies.get(cookie_name(index))
    if not secret:
        return
    with svc.db.write() as session:
        session.execute(
            sa.delete(WebSession).where(WebSession.secret_sha256 == _digest(secret), WebSession.index_id == index.id)
        )


def set_session_cookie(
    response: Response, svc: UIServices, request: Request, index: IndexRef, secret: str, expires: dt.datetime
) -> None:
    max_age = max(0, int((expires - utcnow()).total_seconds()))
    response.set_cookie(
        cookie_name(index), secret, max_age=max_age, path=cookie_path(index), httponly=True, samesite="strict",
        secure=_secure(svc, request),
    )


def clear_session_cookie(response: Response, svc: UIServices, request: Request, index: IndexRef) -> None:
    response.delete_cookie(
        cookie_name(index), path=cookie_path(index), httponly=True, samesite="strict", secure=_secure(svc, request)
    )


def csrf_token(request: Request) -> tuple[str, bool]:
    """The CSRF value for this browser's forms, and whether it is new (then ``set_csrf_cookie``)."""
    value = request.cookies.get(CSRF_COOKIE)
    if value and 20 <= len(value) <= 100:
        return value, False
    return secrets.token_urlsafe(32), True


def set_csrf_cookie(response: Response, svc: UIServices, request: Request, value: str) -> None:
    response.set_cookie(CSRF_COOKIE, value, path="/", httponly=True, samesite="strict", secure=_secure(svc, request))


def csrf_problem(svc: UIServices, request: Request, submitted: object) -> str | None:
    """Why a form POST fails the CSRF check, or None when it passes."""
    origin = request.headers.get("origin")
    if origin is not None:
        mine = urlsplit(svc.base_url(request))
        theirs = urlsplit(origin)
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
            return f"the form was sent from another site ({origin})"
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie:
        return "this browser has no CSRF cookie (cookies may be blocked); reload the form and send it again"
    if not isinstance(submitted, str) or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return "the form's CSRF token is missing or does not match this browser's"
    return None
