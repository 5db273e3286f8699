"""Who is making a request: the ``Authorization`` header, checked against stored tokens.

Upload clients send HTTP Basic with user ``__token__`` and the token as password (twine, uv,
pip's index credentials); Warehouse also accepts ``Authorization: token <t>`` and ``bearer <t>``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assay.accounts import tokens
from assay.accounts.tokens import TokenError, TokenRefusal
from assay.storage.models import ApiToken, Project, Role, User

#: Why a request's credentials are refused: none sent, a token refused (``TokenRefusal``),
#: or a good token used for a project it may not upload to.
AuthRefusal = Literal["no-credentials", "wrong-project", "wrong-index"] | TokenRefusal


class AuthError(Exception):
    """``status`` 401: no usable credentials (ask for them); 403: credentials refused.
    ``code`` says why, for the audit log (``assay.web.refusals``)."""

    def __init__(self, message: str, status: int, code: AuthRefusal = "invalid-token") -> None:
        super().__init__(message)
        self.status = status
        self.code: AuthRefusal = code


def token_from_header(header: str | None) -> str | None:
    """The token in an Authorization header, or None when there is no header."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError("Malformed HTTP Basic credentials.", 401) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError("Malformed HTTP Basic credentials.", 401)
        if username != "__token__":
            raise AuthError(
                "Username/password authentication is not supported; use an API token with "
                "username '__token__'.",
                403,
            )
        return password
    if scheme in ("token", "bearer"):
        return value
    raise AuthError(f"Unsupported authorization scheme {scheme!r}.", 401)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    token_id: str
    #: The index the token belongs to (the only one it is valid on).
    index_id: int
    kind: str  # "user" or "publisher"
    user_id: int | None
    username: str | None
    publisher_id: int | None
    #: Normalized project names the token is limited to (None: no limit beyond roles).
    projects: tuple[str, ...] | None
    oidc_claims: dict[str, Any] | None
    single_use: bool

    @property
    def actor(self) -> str:
        if self.kind == "publisher":
            return f"publisher:{self.publisher_id}"
        return f"user:{self.username}"


def authenticate(session: Session, header: str | None, prefix: str, index_id: int, index_name: str) -> Principal:
    """The caller, if its token is valid on the index ``index_id`` (a token belongs to one index:
    issue 11, part 3; PEP 807's isolated registries)."""
    token = token_from_header(header)
    if token is None:
        raise AuthError("Authentication required: use an API token (username '__token__').", 401, "no-credentials")
    try:
        row = tokens.verify(session, token, prefix)
    except TokenError as exc:
        raise AuthError(str(exc), 403, exc.code) from None
    if row.index_id != index_id:
        # Said plainly: the token is genuine, so naming the mistake leaks nothing its holder
        # does not know, and saves them guessing why a working token is refused.
        raise AuthError(f"This API token is not valid on the index {index_name!r}.", 403, "wrong-index")
    username = None
    if row.user_id is not None:
        username = session.execute(sa.select(User.username).where(User.id == row.user_id)).scalar()
    return _principal(row, username)


def _principal(row: ApiToken, username: str | None) -> Principal:
    return Principal(
        token_id=row.id,
        index_id=row.index_id,
        kind=row.kind,
        user_id=row.user_id,
        username=username,
        publisher_id=row.publisher_id,
        projects=tuple(row.projects) if row.projects is not None else None,
        oidc_claims=row.oidc_claims,
        single_use=row.single_use,
    )


def role_on(session: Session, user_id: int, project_id: int) -> str | None:
    return session.execute(
        sa.select(Role.role).where(Role.user_id == user_id, Role.project_id == project_id)
    ).scalar()


def check_upload_allowed(session: Session, who: Principal, normalized: str, project: Project | None) -> None:
    """May ``who`` upload a file to ``normalized``? Raise ``AuthError`` (403) if not."""
    if who.projects is not None and normalized not in who.projects:
        raise AuthError(
            f"The credential used is not allowed to upload to project {normalized!r}.", 403, "wrong-project"
        )
    if who.kind == "publisher":
        if project is None:
            # Warehouse's rule and message: a Trusted Publisher token cannot create projects; a
            # pending publisher creates the project when the token is minted.
            raise AuthError(
                f"Non-user identities cannot create new projects. Project {normalized!r} does not "
                "exist: register a pending publisher for it (its name must match the metadata).",
                403,
                "wrong-project",
            )
        from assay.storage.models import PublisherProject

        linked = session.execute(
            sa.select(PublisherProject.project_id).where(
                PublisherProject.publisher_id == who.publisher_id,
                PublisherProject.project_id == project.id,
            )
        ).first()
        if linked is None:
            raise AuthError(
                f"The trusted publisher is no longer registered for project {normalized!r}.", 403, "wrong-project"
            )
        return
    if project is None:
        return  # a user may create a new project; they become its owner
    if who.user_id is None or role_on(session, who.user_id, project.id) is None:
        raise AuthError(
            f"The user {who.username!r} is not an owner or maintainer of project {normalized!r}.",
            403,
            "wrong-project",
        )
