"""Refused attempts leave a trace (issue 10, item 14).

A refused upload or token exchange changes nothing, so it wrote nothing: a token being guessed,
a leaked token used after revocation, a CI job aiming at someone else's project or a forged
attestation went unseen. Every refusal is now logged at INFO with what identifies the attempt
(the API token's public id or the uploader, the OIDC token's issuer, subject and repository,
never a secret or the JWT itself), and the security-relevant ones are audited
(``assay.audit.record_refusal``, aggregated per source so a flood cannot grow the table).

This sits at the routes, where a refusal becomes a response. The reason code is the one the
refusing code gave its error (``AuthError.code``, ``UploadRejected.code``, ``MintError.code``),
never derived from the error's wording.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from starlette.concurrency import run_in_threadpool

from assay import audit, untrusted_json
from assay.accounts import tokens
from assay.accounts.auth import AuthError, AuthRefusal, Principal, token_from_header
from assay.accounts.tokens import TokenError
from assay.storage.db import Database
from assay.web.redact import redact

if TYPE_CHECKING:
    from assay.publishing.oidc_token import ExchangeRefusal
    from assay.upload.service import UploadRefusal

log = logging.getLogger("assay.refusals")

UPLOAD_REFUSED = "upload:refused"
EXCHANGE_REFUSED = "oidc:mint-refused"

#: Upload refusal reasons worth an audit row: someone presented a credential that is not
#: good, or a good one where it has no business. Conflicts and malformed uploads are mistakes
#: of honest clients: logged, not audited.
AUDITED_UPLOAD_REASONS: frozenset[AuthRefusal | UploadRefusal] = frozenset(
    {"invalid-token", "revoked-token", "expired-token", "wrong-project", "project-closed", "token-reused",
     "forbidden", "bad-attestation"}
)

#: At most this many characters of a refusal's message go into the log and the audit row.
MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class Attempt:
    """Who tried: what the request shows of it, all of it safe to log."""

    actor: str
    token_id: str | None
    remote_addr: str | None


def upload_attempt(who: Principal | None, authorization: str | None, prefix: str, remote: str | None) -> Attempt:
    """The uploader, or for a refused credential the token's public id (the part before the
    secret, which names it in ``assay admin token list``) when it has one."""
    if who is not None:
        return Attempt(who.actor, who.token_id, remote)
    token_id = None
    try:
        presented = token_from_header(authorization)
        if presented is not None:
            token_id, _secret = tokens.split(presented, prefix)
    except (AuthError, TokenError):
        pass
    return Attempt("anonymous", token_id, remote)


async def upload_refused(
    db: Database,
    attempt: Attempt,
    status: int,
    reason: AuthRefusal | UploadRefusal,
    message: str,
    project: str | None,
) -> None:
    message = redact(message)[:MESSAGE_LIMIT]
    log.info(
        "upload refused: %s %s (%s) for project %s by %s, token %s, from %s",
        status, reason, message, project or "-", attempt.actor, attempt.token_id or "-", attempt.remote_addr or "-",
    )
    if reason in AUDITED_UPLOAD_REASONS:
        await _audit(
            db, UPLOAD_REFUSED, reason, attempt, project=project, details={"status": status, "message": message}
        )


def unverified_claims(body: bytes) -> dict[str, Any]:
    """The OIDC token's issuer, subject and repository, read without verifying it (to say which
    job was refused; the refusal may well be that it does not verify). The body is the one that
    was refused, possibly for its nesting: read with the same depth guard as every JSON edge."""
    try:
        payload = untrusted_json.loads(body)
        raw = payload.get("token") if isinstance(payload, dict) else None
        claims = jwt.decode(raw, options={"verify_signature": False}) if isinstance(raw, str) else {}
    except (ValueError, UnicodeDecodeError, jwt.PyJWTError):
        return {}
    picked = {k: claims.get(k) for k in ("iss", "sub", "repository", "project_path")}
    return {k: str(v)[:MESSAGE_LIMIT] for k, v in picked.items() if isinstance(v, str | int)}


async def exchange_refused(
    db: Database, body: bytes, remote: str | None, code: ExchangeRefusal, description: str
) -> None:
    claims = unverified_claims(body)
    description = redact(description)[:MESSAGE_LIMIT]
    log.info(
        "token exchange refused: %s (%s): issuer %s, sub %s, repository %s, from %s",
        code, description, claims.get("iss", "-"), claims.get("sub", "-"),
        claims.get("repository") or claims.get("project_path") or "-", remote or "-",
    )
    await _audit(
        db, EXCHANGE_REFUSED, code, Attempt("anonymous", None, remote), details={**claims, "message": description}
    )


#: Seconds between two audit writes for one (action, reason, source) in a process: repeats in
#: between are counted in memory and added by one write when the interval is over (so up to a
#: second's count is lost if the server stops meanwhile). Without it a flood of bad tokens costs
#: a durable write each: on SQLite a refused upload took 17.9 ms instead of 2 ms, and every
#: write queues behind the real uploads' lock; with it, 2.4-3.5 ms (docs/reliability.md).
COALESCE_SECONDS = 1.0
#: Keys remembered before the expired ones are swept out.
PENDING_LIMIT = 4096


@dataclass
class _Pending:
    written: float  # time.monotonic() of the last write
    count: int = 0  # refusals since, not written yet
    flushing: bool = False


_pending: dict[tuple[int, str, str, str | None], _Pending] = {}
_tasks: set[asyncio.Task[None]] = set()


async def _audit(
    db: Database, action: str, reason: str, attempt: Attempt, *, project: str | None = None,
    details: dict[str, Any],
) -> None:
    """Write the refusal now, or count it for the write at the end of the key's interval (the
    route's event loop is the only thread touching ``_pending``)."""
    key = (id(db), action, reason, attempt.remote_addr)
    now = time.monotonic()
    state = _pending.get(key)
    if state is not None and (now - state.written < COALESCE_SECONDS or state.flushing):
        state.count += 1
        if not state.flushing:
            state.flushing = True
            task = asyncio.create_task(_flush_later(db, key, state, action, reason, attempt, project, details))
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)
        return
    if len(_pending) >= PENDING_LIMIT:
        # Keys whose interval is over count as absent anyway: forget them (many sources).
        for old in [k for k, v in _pending.items() if not v.flushing and now - v.written >= COALESCE_SECONDS]:
            del _pending[old]
    _pending[key] = _Pending(written=now)
    await _write(db, action, reason, attempt, project, details, 1)


async def _flush_later(
    db: Database, key: tuple[int, str, str, str | None], state: _Pending, action: str, reason: str,
    attempt: Attempt, project: str | None, details: dict[str, Any],
) -> None:
    await asyncio.sleep(max(0.0, state.written + COALESCE_SECONDS - time.monotonic()))
    times, state.count = state.count, 0
    state.written, state.flushing = time.monotonic(), False
    await _write(db, action, reason, attempt, project, details, times)


async def _write(
    db: Database, action: str, reason: str, attempt: Attempt, project: str | None, details: dict[str, Any],
    times: int,
) -> None:
    try:
        await run_in_threadpool(
            audit.record_refusal, db, action=action, reason=reason, actor=attempt.actor,
            remote_addr=attempt.remote_addr, project=project, token_id=attempt.token_id, details=details,
            times=times,
        )
    except Exception:
        # The refusal stands whatever happens here; a database that cannot take the row is
        # reported (and the refusal is in the log line above).
        log.warning("could not audit %d refused %s (%s)", times, action, reason, exc_info=True)
