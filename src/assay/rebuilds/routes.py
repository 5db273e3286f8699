"""The Integrity API's rebuild reports (issue 14, item 4):

- ``POST /integrity/<project>/<version>/<filename>/rebuilds``: a registered rebuilder submits
  its signed rebuild statement (a PEP 740 attestation object: DSSE envelope and Sigstore
  verification material); the index verifies it (``check``) and records a match or a mismatch.
- ``GET`` the same URL: "reproduced by N", with who and when, and every report with its
  attestation, so that a client can check them itself (``assay verify``).
- ``/stage/<id>/integrity/...``: the same for the files a stage's preview index shows (the
  stage's own and the live ones); staged files are reachable only through their stage's URL,
  as they are absent from every live read path.

No token: the Sigstore signature of a registered rebuilder is the credential (on a private
index, a read token of the index, as for every read route). Named indexes: ``/<index>/...``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from assay import audit, untrusted_json
from assay.attestations.trust import TrustRoot, load_trust_root
from assay.config import Settings
from assay.index import rebuild_reports
from assay.indexes import Indexes, IndexRef
from assay.rebuilds import check, store
from assay.rebuilds.registry import of_project
from assay.storage.changes import project_changed
from assay.storage.db import Database
from assay.storage.models import Project, Rebuilder
from assay.web.access import open_index
from assay.web.conditional import not_modified
from assay.web.responses import JSONError

#: An attestation object is a few KiB (a certificate, a log entry, the envelope).
MAX_BODY = 256 * 1024


class RebuildServices(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def indexes(self) -> Indexes: ...


@functools.cache
def _trust(spec: str) -> TrustRoot:
    # One parsed root (and sigstore verifier) per process and setting, loaded on first use.
    return load_trust_root(spec)


def _services(request: Request) -> RebuildServices:
    svc: RebuildServices = request.app.state.services
    return svc


def _answer(request: Request, doc: dict[str, Any], status: int = 200) -> Response:
    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    # Reports may arrive at any time: revalidated, never cached blind.
    headers = {"etag": etag, "cache-control": "no-cache"}
    if status == 200 and not_modified(request.headers, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _listing(svc: RebuildServices, index: IndexRef, request: Request) -> dict[str, Any]:
    p = request.path_params
    with svc.db.read() as session:
        target = store.find(session, index, p["project"], p["version"], p["filename"], p.get("stage"))
        reports = rebuild_reports.of_files(session, index.id, [(target.filename, target.sha256)], with_attestation=True)
    return rebuild_reports.summary(target.filename, target.sha256, reports.get(target.filename, []))


def _submit(svc: RebuildServices, index: IndexRef, request: Request, raw: Any, remote: str | None) -> dict[str, Any]:
    p = request.path_params
    with svc.db.read() as session:
        target = store.find(session, index, p["project"], p["version"], p["filename"], p.get("stage"))
        rebuilders = of_project(session, target.project_id)
    if target.packagetype != "bdist_wheel":
        raise check.RebuildInvalid(f"{target.filename} is not a wheel: rebuilds are reported for wheels")
    if not rebuilders:
        raise check.NotARebuilder(
            f"{target.project} has no registered rebuilders (assay admin rebuilder add {target.project} ...)"
        )
    # Outside the transaction: sigstore's checks take milliseconds and need no database.
    checked = check.check(
        raw,
        filename=target.filename,
        sha256=target.sha256,
        expected=[check.Expected(r.issuer, r.identity, r.kind) for r in rebuilders],
        trust=_trust(svc.settings.sigstore_trust_root),
    )
    who = rebuilders[checked.signer]
    with svc.db.write() as session:
        # Still registered (a removal meanwhile wins), and the file still the same bytes.
        again = store.find(session, index, p["project"], p["version"], p["filename"], p.get("stage"))
        if again.sha256 != target.sha256 or session.get(Rebuilder, who.id) is None:
            raise store.NoSuchFile("The file or the rebuilder changed meanwhile; submit again.")
        row = store.record(session, index, target, who.id, checked.claim, raw)
        audit.record(
            session,
            actor=f"rebuilder:{who.identity}",
            action=f"rebuild:{checked.claim.outcome}",
            project=target.project,
            target=target.filename,
            remote_addr=remote,
            details={
                "issuer": who.issuer,
                who.kind: who.identity,
                "sha256": target.sha256,
                "rebuilt_sha256": checked.claim.rebuilt_sha256,
                "source": checked.claim.source,
                "staged": not target.live,
            },
        )
        if target.live:
            # The JSON API lists a live file's rebuilds: its pages' serial moves on.
            project = session.get(Project, target.project_id)
            assert project is not None
            project_changed(session, project, listing_changed=False)
        rebuilder = session.get(Rebuilder, who.id)
        assert rebuilder is not None
        return rebuild_reports.entry(row, rebuilder, with_attestation=False)


async def _body(request: Request) -> Any:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise check.RebuildInvalid(f"Request body too large (at most {MAX_BODY} bytes).")
    if "json" not in request.headers.get("content-type", "application/json"):
        raise _Unsupported()
    try:
        return untrusted_json.loads(raw)
    except ValueError as exc:
        raise check.RebuildInvalid(f"The body is not a JSON attestation object: {exc}") from None


class _Unsupported(Exception):
    pass


async def rebuilds(request: Request) -> Response:
    svc = _services(request)
    index = await run_in_threadpool(open_index, request, svc)
    if isinstance(index, Response):
        return index
    try:
        if request.method == "POST":
            if index.is_mirror:
                return JSONError(405, "A mirror index takes no rebuild reports.")
            raw = await _body(request)
            remote = request.client.host if request.client else None
            doc = await run_in_threadpool(_submit, svc, index, request, raw, remote)
            return _answer(request, doc, 201)
        return _answer(request, await run_in_threadpool(_listing, svc, index, request))
    except store.NoSuchFile as exc:
        return JSONError(404, str(exc))
    except check.NotARebuilder as exc:
        return JSONError(403, f"Rebuild refused: {exc}")
    except check.RebuildInvalid as exc:
        status = 413 if "too large" in str(exc) else 400
        return JSONError(status, f"Rebuild refused: {exc}")
    except _Unsupported:
        return JSONError(415, "Send the attestation object as application/json.")


routes = [
    Route("/integrity/{project}/{version}/{filename}/rebuilds", rebuilds, methods=["GET", "HEAD", "POST"]),
    Route(
        "/stage/{stage}/integrity/{project}/{version}/{filename}/rebuilds", rebuilds, methods=["GET", "HEAD", "POST"]
    ),
]
