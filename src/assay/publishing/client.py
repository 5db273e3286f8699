"""``assay publish``: Trusted Publishing to any index from CI.

twine attempts Trusted Publishing only against PyPI's own URLs; this client does it against
any index that serves PyPI's ``/_/oidc/`` API or PEP 807 discovery:

1. discover the endpoints: PEP 807 ``/.well-known/pytp?discover=<upload path>`` first, then
   PyPI's fixed paths at the upload URL's host root;
2. get the audience, then the CI job's OIDC token for it (the ``id`` package: GitHub Actions,
   GitLab CI, Google Cloud, Buildkite, CircleCI);
3. mint an upload token, upload each file with the ``*.attestation`` files beside it, and save
   its transparency-log receipt beside it as ``<file>.tlog-proof`` (``receipts``);
4. revoke the token at the end, whatever happened.

From a maintainer's machine (issue 14, item 3) it uploads with an API token instead (``--token``),
after signing the files with the maintainer's Sigstore identity (``assay.publishing.signing``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote_plus, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assay import untrusted_json
from assay.mediatypes import PYTP_JSON_V1
from assay.publishing import receipts
from assay.upload.dists import ArchiveLimits, DistError, parse_filename, read_metadata

PYTP_JSON = PYTP_JSON_V1
#: Re-mint when the token has less than this left (twine re-mints with 5 minutes left).
REMINT_MARGIN = dt.timedelta(minutes=5)


class PublishError(Exception):
    """A step failed; the message says which and what to do."""


class _Answer(BaseModel):
    # Strict: a number is not a URL or a token; other keys are the server's business.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Discovery(_Answer):
    """PEP 807's discovery document (the keys this client uses)."""

    audience: str = Field(alias="audience-endpoint")
    mint: str = Field(alias="token-mint-endpoint")
    revoke: str | None = Field(default=None, alias="token-revocation-endpoint")


class _Audience(_Answer):
    audience: Annotated[str, Field(min_length=1)]


class _Minted(_Answer):
    """PyPI's mint answer; PEP 807 adds ``expires`` (seconds since the epoch)."""

    token: Annotated[str, Field(min_length=1)]
    expires: int | None = None


_A = TypeVar("_A", bound=_Answer)


def _answer(response: httpx.Response, model: type[_A]) -> _A | None:
    """The index's JSON answer as ``model``, or None when it is not one. Read with the depth
    guard: a hostile index must not crash the job with a RecursionError (issue 10, item 3)."""
    try:
        return model.model_validate(untrusted_json.loads(response.content))
    except (ValueError, ValidationError):  # ValidationError is a ValueError; named for the reader
        return None


@dataclass(frozen=True)
class Endpoints:
    audience: str
    mint: str
    revoke: str | None
    discovered: bool  # True: from PEP 807 discovery


def _trustworthy(url: str) -> bool:
    """PEP 807: every URL must be a potentially trustworthy origin: https, or loopback."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def discover(client: httpx.Client, upload_url: str) -> Endpoints:
    parts = urlsplit(upload_url)
    if not parts.scheme or not parts.netloc:
        raise PublishError(f"the repository URL {upload_url!r} is not an absolute URL")
    if not _trustworthy(upload_url):
        raise PublishError(f"refusing Trusted Publishing over plain http to {parts.netloc}: use https")
    origin = f"{parts.scheme}://{parts.netloc}"
    # PEP 807: the discovery key is the upload URL's path, query-safe (its example uses
    # quote_plus, which also encodes "/").
    url = f"{origin}/.well-known/pytp?discover={quote_plus(parts.path)}"
    try:
        response = client.get(url, headers={"Accept": PYTP_JSON})
    except httpx.HTTPError as exc:
        raise PublishError(f"cannot reach {origin}: {exc}") from None
    if response.status_code == 200:
        doc = _answer(response, _Discovery)
        if doc is None:
            raise PublishError(f"{url} answered 200 but not with a PEP 807 discovery document")
        for endpoint in filter(None, (doc.audience, doc.mint, doc.revoke)):
            # PEP 807: endpoints must be on the upload URL's host, and trustworthy.
            if urlsplit(endpoint).hostname != parts.hostname or not _trustworthy(endpoint):
                raise PublishError(f"discovery named an endpoint on another host or over http: {endpoint!r}")
        return Endpoints(doc.audience, doc.mint, doc.revoke, True)
    # Not discoverable: PyPI's fixed paths at the host root (what uv, twine and the PyPA
    # action use).
    return Endpoints(f"{origin}/_/oidc/audience", f"{origin}/_/oidc/mint-token", f"{origin}/_/oidc/revoke-token", False)


def _errors(response: httpx.Response) -> str:
    try:
        doc = untrusted_json.loads(response.content)
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        return "; ".join(f"{e.get('code')}: {e.get('description')}" for e in doc["errors"] if isinstance(e, dict))
    if isinstance(doc, dict):
        return str(doc.get("detail") or doc.get("message") or doc)
    return str(doc)


def get_audience(client: httpx.Client, endpoints: Endpoints) -> str:
    try:
        response = client.get(endpoints.audience)
    except httpx.HTTPError as exc:
        raise PublishError(f"cannot reach {endpoints.audience}: {exc}") from None
    if response.status_code == 404:
        raise PublishError("the index does not support Trusted Publishing (no audience endpoint)")
    if response.status_code != 200:
        raise PublishError(f"the audience request failed: HTTP {response.status_code}: {_errors(response)}")
    doc = _answer(response, _Audience)
    if doc is None:
        raise PublishError('the audience endpoint did not return {"audience": "<a non-empty string>"}')
    return doc.audience


def ambient_token(audience: str) -> str:
    import id as ambient  # the `id` package: detects GitHub, GitLab, Google, Buildkite, CircleCI

    try:
        token = ambient.detect_credential(audience)
    except ambient.IdentityError as exc:
        raise PublishError(f"could not get an OIDC token from this CI environment: {exc}") from None
    if token is None:
        raise PublishError(
            "no ambient OIDC credential: run this in CI that provides one (GitHub Actions with "
            f"`permissions: id-token: write`; GitLab CI with an `id_tokens:` entry whose aud is {audience!r}; "
            "Google Cloud; Buildkite; CircleCI)"
        )
    return str(token)


@dataclass
class UploadToken:
    token: str
    expires: dt.datetime


def mint(client: httpx.Client, endpoints: Endpoints, oidc_token: str) -> UploadToken:
    try:
        response = client.post(endpoints.mint, json={"token": oidc_token})
    except httpx.HTTPError as exc:
        raise PublishError(f"cannot reach {endpoints.mint}: {exc}") from None
    if response.status_code != 200:
        raise PublishError(f"the index refused the OIDC token (HTTP {response.status_code}): {_errors(response)}")
    doc = _answer(response, _Minted)
    if doc is None:
        raise PublishError("the mint endpoint answered 200 without a token")
    # PEP 807: without "expires", assume at most 15 minutes.
    if doc.expires is None:
        return UploadToken(doc.token, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=900))
    try:
        return UploadToken(doc.token, dt.datetime.fromtimestamp(doc.expires, dt.UTC))
    except (OverflowError, OSError, ValueError):
        raise PublishError(f"the mint endpoint answered an impossible expiry time ({doc.expires})") from None


def revoke(client: httpx.Client, endpoints: Endpoints, token: UploadToken) -> str | None:
    """Revoke the token; returns a warning message on failure (the job still succeeded)."""
    if not endpoints.revoke:
        return "the index offers no revocation endpoint; the token expires by itself"
    try:
        response = client.post(endpoints.revoke, json={"token": token.token})
    except httpx.HTTPError as exc:
        return f"could not revoke the upload token: {exc}"
    if response.status_code not in (200, 204):
        return f"could not revoke the upload token (HTTP {response.status_code}): {_errors(response)}"
    return None


def attestations_for(dist: Path) -> list[Path]:
    """``<dist>.attestation`` and ``<dist>.<kind>.attestation`` beside the file (the names uv
    and the PyPA action use)."""
    prefix = dist.name + "."
    return sorted(p for p in dist.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".attestation"))


#: Core metadata fields sent as form fields, under the names twine uses.
_MULTI = {
    "classifiers",
    "requires_dist",
    "provides_extra",
    "platforms",
    "supported_platforms",
    "obsoletes_dist",
    "provides_dist",
    "requires_external",
    "dynamic",
    "license_files",
}


def form_fields(dist: Path) -> tuple[dict[str, Any], str]:
    try:
        parsed = parse_filename(dist.name)
        meta = read_metadata(dist, parsed, ArchiveLimits(max_metadata=16 * 1024 * 1024))
    except DistError as exc:
        raise PublishError(f"{dist.name}: {exc}") from None
    data = dist.read_bytes()
    fields: dict[str, Any] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "filetype": parsed.packagetype,
        "pyversion": parsed.python_version if parsed.is_wheel else "source",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }
    for key, value in meta.fields.items():
        if key == "project_urls" and isinstance(value, dict):
            fields["project_urls"] = [f"{label}, {url}" for label, url in value.items()]
        elif key == "keywords" and isinstance(value, list):
            fields["keywords"] = ",".join(value)
        elif (key in _MULTI and isinstance(value, list)) or isinstance(value, str):
            fields[key] = value
    fields["name"], fields["version"] = meta.name, meta.version
    return fields, fields["sha256_digest"]


@dataclass(frozen=True)
class Uploaded:
    message: str  # the index's answer text
    sha256: str
    receipt_url: str | None  # issue 13: the file's log receipt, from the answer's Link header
    log_index: int | None


def upload(
    client: httpx.Client, upload_url: str, token: UploadToken, dist: Path, attestations: list[Path]
) -> Uploaded:
    fields, sha256 = form_fields(dist)
    if attestations:
        docs = []
        for path in attestations:
            try:
                docs.append(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:
                raise PublishError(f"{path.name} is not a readable JSON attestation: {exc}") from None
        fields["attestations"] = json.dumps(docs)
    with dist.open("rb") as fh:
        try:
            response = client.post(
                upload_url,
                data=fields,
                files={"content": (dist.name, fh, "application/octet-stream")},
                auth=("__token__", token.token),
            )
        except httpx.HTTPError as exc:
            raise PublishError(f"uploading {dist.name} failed: {exc}") from None
    if response.status_code == 200:
        index = response.headers.get("assay-log-index", "")
        return Uploaded(
            response.text.strip() or "OK", sha256, receipts.receipt_url(response),
            int(index) if index.isdigit() else None,
        )
    reason = response.text.strip() or response.reason_phrase
    raise PublishError(f"the index refused {dist.name} (HTTP {response.status_code}): {reason}")


def publish(
    dists: list[Path],
    repository_url: str,
    *,
    with_attestations: bool = True,
    say: Callable[[str], None] = print,
    client: httpx.Client | None = None,
    oidc: Callable[[str], str] = ambient_token,
    api_token: str | None = None,
) -> None:
    """Upload ``dists``: with an upload token minted by Trusted Publishing, or (issue 14, item
    3: a release from a maintainer's machine) with the API token ``api_token``."""
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=False)
    token: UploadToken | None = None
    endpoints: Endpoints | None = None
    try:
        if api_token is not None:
            if not _trustworthy(repository_url):
                raise PublishError(
                    f"refusing to send an API token over plain http to {urlsplit(repository_url).netloc}"
                )
            # An API token has its own lifetime: never re-minted nor revoked here.
            fixed = UploadToken(api_token, dt.datetime.max.replace(tzinfo=dt.UTC))
            for dist in dists:
                files = attestations_for(dist) if with_attestations else []
                note = f" with {len(files)} attestation(s)" if files else ""
                result = upload(http, repository_url, fixed, dist, files)
                say(f"uploaded {dist.name}{note}: {result.message}")
                _save_receipt(http, repository_url, fixed, dist, result, say)
            return
        endpoints = discover(http, repository_url)
        say(f"Trusted Publishing endpoints: {'PEP 807 discovery' if endpoints.discovered else 'PyPI-style /_/oidc/'}")
        audience = get_audience(http, endpoints)
        say(f"audience: {audience}")
        token = mint(http, endpoints, oidc(audience))
        say(f"minted an upload token valid until {token.expires:%H:%M:%S} UTC")
        for dist in dists:
            if token.expires - dt.datetime.now(dt.UTC) < REMINT_MARGIN:
                warning = revoke(http, endpoints, token)
                if warning:
                    say(f"warning: {warning}")
                token = mint(http, endpoints, oidc(audience))
                say("minted a fresh upload token")
            files = attestations_for(dist) if with_attestations else []
            note = f" with {len(files)} attestation(s)" if files else ""
            result = upload(http, repository_url, token, dist, files)
            say(f"uploaded {dist.name}{note}: {result.message}")
            _save_receipt(http, repository_url, token, dist, result, say)
    finally:
        if token is not None and endpoints is not None:
            warning = revoke(http, endpoints, token)
            say(f"warning: {warning}" if warning else "revoked the upload token")
        if own:
            http.close()


def _save_receipt(
    http: httpx.Client, upload_url: str, token: UploadToken, dist: Path, result: Uploaded, say: Callable[[str], None]
) -> None:
    """Save the file's log receipt beside it; a missing receipt is a warning, not a failed
    publish (the file is uploaded either way)."""
    if result.receipt_url is None:
        say(f"note: the index gives no log receipt for {dist.name}")
        return
    try:
        saved = receipts.fetch(http, result.receipt_url, dist, result.sha256, upload_url=upload_url, token=token.token)
    except receipts.ReceiptError as exc:
        say(f"warning: no log receipt saved for {dist.name}: {exc}")
        return
    say(
        f"saved the log receipt {saved.path.name} (entry {saved.index} of {saved.tree_size}; "
        "inclusion checked, the checkpoint's signature NOT verified: no log key is pinned)"
    )


def iter_dists(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.name.endswith(".attestation"):
            continue  # attestations travel with their distribution
        yield path
