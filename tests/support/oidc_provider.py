"""Test stand-in for CI providers' OIDC issuers.

This module is **test support code, never used in production**. Tests cannot reach the real
issuers that sign CI jobs' identity tokens, so :class:`OIDCProvider` plays their part: it is a
real HTTP server on ``127.0.0.1`` (uvicorn serving a small Starlette app in a background thread)
with its own signing keys, that signs real JWTs (RS256 or ES256) exactly as a CI provider would.

What it emulates:

* any OIDC issuer's public surface: ``{issuer}/.well-known/openid-configuration`` (OIDC
  Discovery) and the JWKS it points to, plus key rotation and retirement, an IdP outage switch
  and a JWKS file on disk (for an index configured with "JWKS from file", air-gapped);
* the GitHub Actions token request endpoint behind ``ACTIONS_ID_TOKEN_REQUEST_URL`` /
  ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` (``GET …?api-version=2.0&audience=<aud>`` with
  ``Authorization: bearer <request token>`` → ``{"value": <jwt>}``), so the real clients (the
  ``id`` package used by twine / pdm / the PyPA publish action, and uv's ``ambient-id``) can fetch
  a token from it; Forgejo Actions and GitHub Enterprise Server use the same protocol;
* the claim sets of GitHub Actions, GitHub Enterprise Server, GitLab CI/CD (gitlab.com and
  self-managed), Google Cloud service accounts, CircleCI and Forgejo Actions
  (:func:`github_claims`, :func:`gitlab_claims`, :func:`google_claims`, :func:`circleci_claims`,
  :func:`forgejo_claims`); a generic issuer is just :meth:`OIDCProvider.token` with any claims;
* the environment the real clients read in CI (:func:`github_actions_env`, :func:`gitlab_ci_env`,
  :func:`clean_ci_environ`);
* hostile tokens for negative tests. These are **methods of OIDCProvider** (each returns a JWT
  string whose other claims are valid): :meth:`~OIDCProvider.expired_token`,
  :meth:`~OIDCProvider.not_yet_valid_token`, :meth:`~OIDCProvider.wrong_audience_token`,
  :meth:`~OIDCProvider.audience_list_token`, :meth:`~OIDCProvider.alg_none_token`,
  :meth:`~OIDCProvider.hs256_with_public_key_token`, :meth:`~OIDCProvider.unknown_kid_token`,
  :meth:`~OIDCProvider.tampered_token`, :meth:`~OIDCProvider.oversized_token`,
  :meth:`~OIDCProvider.foreign_key_token`.

Issuer URLs: the real issuers are ``https://token.actions.githubusercontent.com`` (GitHub),
``https://HOST/_services/token`` (GHES), ``https://gitlab.com`` or ``https://HOST`` (GitLab),
``https://accounts.google.com``, ``https://oidc.circleci.com/org/<org-id>`` (CircleCI) and
``https://HOST/api/actions`` (Forgejo). Here the issuer is always
``http://127.0.0.1:<port><path>``; pass ``path=`` to mimic a provider whose issuer has a path
(e.g. ``OIDCProvider(path="/_services/token")`` for GHES, ``path="/api/actions"`` for Forgejo).

Typical use::

    with OIDCProvider() as idp:
        idp.github_job = github_claims("acme/widget", "release.yml")
        env = {**clean_ci_environ(), **github_actions_env(idp)}
        # ... run twine / uv / `python -m id` with env, or sign directly:
        jwt_ = idp.token("assay", gitlab_claims("acme/widget"))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "DEFAULT_SHA",
    "GITHUB_TOKEN_ROUTE",
    "JWKS_ROUTE",
    "MAX_TOKEN_BYTES",
    "OIDCProvider",
    "circleci_claims",
    "clean_ci_environ",
    "forgejo_claims",
    "github_actions_env",
    "github_claims",
    "gitlab_ci_env",
    "gitlab_claims",
    "gitlab_id_token_var_names",
    "google_claims",
]

#: A made-up commit id used as the default ``sha`` claim.
DEFAULT_SHA = "3f786850e387550fdab836ed7e6dc881de23001b"

#: Route (below the issuer path) of the JWKS, as GitHub's issuer names it.
JWKS_ROUTE = "/.well-known/jwks"

#: Route (below the issuer path) of the GitHub-Actions-style token request endpoint.
GITHUB_TOKEN_ROUTE = "/_github/token"

#: Size the index is expected to refuse above; :meth:`OIDCProvider.oversized_token` exceeds it.
MAX_TOKEN_BYTES = 64 * 1024

_SUPPORTED_ALGORITHMS = ("RS256", "ES256")

_STANDARD_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")

# Claim names advertised in the discovery document's claims_supported (the union of what the
# claim builders below emit, like a real provider listing its own claims).
_CLAIMS_SUPPORTED = (
    *_STANDARD_CLAIMS,
    # GitHub Actions / GHES / Forgejo Actions
    "actor", "actor_id", "base_ref", "check_run_id", "environment", "event_name", "head_ref",
    "job_workflow_ref", "job_workflow_sha", "ref", "ref_protected", "ref_type", "repository",
    "repository_id", "repository_owner", "repository_owner_id", "repository_visibility",
    "run_attempt", "run_id", "run_number", "runner_environment", "sha", "workflow",
    "workflow_ref", "workflow_sha",
    # GitLab CI/CD
    "ci_config_ref_uri", "ci_config_sha", "deployment_tier", "environment_action",
    "environment_protected", "job_id", "namespace_id", "namespace_path", "pipeline_id",
    "pipeline_source", "project_id", "project_path", "project_visibility", "ref_path",
    "runner_id", "user_access_level", "user_email", "user_id", "user_login",
    # Google
    "azp", "email", "email_verified",
    # CircleCI
    "oidc.circleci.com/context-ids", "oidc.circleci.com/org-id",
    "oidc.circleci.com/pipeline-definition-id", "oidc.circleci.com/pipeline-id",
    "oidc.circleci.com/project-id", "oidc.circleci.com/ssh-rerun",
    "oidc.circleci.com/vcs-origin", "oidc.circleci.com/vcs-ref",
)  # fmt: skip

_PATH_RE = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# --------------------------------------------------------------------------------------------
# JOSE helpers (by hand where PyJWT, rightly, refuses to produce hostile tokens)
# --------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64url_json(obj: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    algorithm: str
    private_key: PrivateKey

    @classmethod
    def generate(cls, algorithm: str) -> _SigningKey:
        private_key: PrivateKey
        if algorithm == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
        else:  # pragma: no cover - guarded by OIDCProvider.__init__
            raise ValueError(f"unsupported algorithm {algorithm!r}")
        kid = _jwk_thumbprint(_public_jwk_members(private_key))
        return cls(kid=kid, algorithm=algorithm, private_key=private_key)

    def public_jwk(self) -> dict[str, Any]:
        jwk = _public_jwk_members(self.private_key)
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return jwk

    def public_key_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input, self.private_key)
        # PyJWT returns the JOSE form (raw r || s), not DER.
        return ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input, self.private_key)


def _public_jwk_members(private_key: PrivateKey) -> dict[str, Any]:
    public_key = private_key.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    assert isinstance(jwk, dict)
    return {k: v for k, v in jwk.items() if k in ("kty", "n", "e", "crv", "x", "y")}


def _jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable, realistic ``kid``."""
    required = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


# --------------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------------


class OIDCProvider:
    """One local OIDC issuer: its own signing keys, discovery document and JWKS, served over
    HTTP on 127.0.0.1.

    Keys are generated in the constructor (RS256 → RSA 2048, ES256 → P-256); there is one
    *current* key (``current_kid``) and ``rotate_key()`` adds more. ``kid`` values are RFC 7638
    thumbprints, so two providers never share one.

    Knobs tests may set at any time (read on every request):

    * ``github_job`` - claims of the "current job" served by the GitHub token endpoint
      (``None``: the endpoint answers 403, as for a job without ``id-token: write``);
    * ``github_token_lifetime`` - seconds from ``iat`` to ``exp`` of those tokens (GitHub: 300);
    * ``outage_status`` - if set (e.g. 503), discovery and JWKS answer with that status;
    * ``discovery_overrides`` - merged into the discovery document (e.g. a mismatched
      ``issuer`` or a ``jwks_uri`` elsewhere);
    * ``claims_supported`` - the discovery document's ``claims_supported``.

    Records: ``requests_log`` (every requested path, in order) and ``github_token_audiences``
    (the ``audience`` query value of each authorised token request; ``""`` when absent).
    """

    def __init__(
        self, *, algorithm: str = "RS256", path: str = "", jwks_route: str = JWKS_ROUTE
    ) -> None:
        if algorithm not in _SUPPORTED_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_SUPPORTED_ALGORITHMS}, not {algorithm!r}")
        for name, value in (("path", path), ("jwks_route", jwks_route)):
            if value.endswith("/") or not _PATH_RE.match(value):
                raise ValueError(f"{name} must be '' or '/segment[/segment…]', not {value!r}")
        if not jwks_route:
            raise ValueError("jwks_route must not be empty")
        self.algorithm = algorithm
        self.path = path
        self.jwks_route = jwks_route

        self._lock = threading.Lock()
        self._keys: dict[str, _SigningKey] = {}  # every key ever made, by kid
        self._published: list[str] = []  # kids in the JWKS, in order
        first = _SigningKey.generate(algorithm)
        self._keys[first.kid] = first
        self._published.append(first.kid)
        self.current_kid: str = first.kid

        #: Secret the GitHub token endpoint requires as ``Authorization: bearer <token>``.
        self.request_token: str = secrets.token_urlsafe(32)
        self.github_job: dict[str, Any] | None = None
        self.github_token_lifetime: int = 300
        self.outage_status: int | None = None
        self.discovery_overrides: dict[str, Any] = {}
        self.claims_supported: list[str] = list(_CLAIMS_SUPPORTED)
        self.requests_log: list[str] = []
        self.github_token_audiences: list[str] = []

        self._tmpdir = Path(tempfile.mkdtemp(prefix="assay-oidc-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
        #: The JWKS as a file (rewritten on rotation / retirement); removed by ``stop()``.
        self.jwks_path: Path = self._tmpdir / "jwks.json"
        self._write_jwks_file()

        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OIDCProvider:
        """Serve on 127.0.0.1 (a free port; the same port again on a restart) and return self."""
        if self._thread is not None:
            raise RuntimeError("OIDCProvider is already running")
        if not self._tmpdir.exists():  # restarted after stop()
            self._tmpdir.mkdir(parents=True)
            self._write_jwks_file()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self._port or 0))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._build_app(),
            host="127.0.0.1",
            port=self._port,
            loop="asyncio",
            http="h11",
            lifespan="off",
            log_config=None,  # leave the test process's logging alone
            log_level="warning",
            access_log=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"oidc-provider-{self._port}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(5)
                sock.close()
                raise RuntimeError("the OIDC provider's HTTP server did not start")
            time.sleep(0.01)
        self._server, self._thread, self._socket = server, thread, sock
        return self

    def stop(self) -> None:
        """Stop serving (if running) and delete the temporary directory holding ``jwks_path``."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> OIDCProvider:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def authority(self) -> str:
        """``127.0.0.1:PORT`` (what GitLab calls the instance host in ``ci_config_ref_uri``)."""
        if self._port is None:
            raise RuntimeError("OIDCProvider has no address until start() is called")
        return f"127.0.0.1:{self._port}"

    @property
    def issuer(self) -> str:
        """``http://127.0.0.1:PORT`` + path; available once started."""
        return f"http://{self.authority}{self.path}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}{self.jwks_route}"

    @property
    def github_token_request_url(self) -> str:
        """What GitHub puts in ``ACTIONS_ID_TOKEN_REQUEST_URL``: it already has a query."""
        return f"{self.issuer}{GITHUB_TOKEN_ROUTE}?api-version=2.0"

    # -- keys --------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The published key set (what the JWKS endpoint and ``jwks_path`` hold)."""
        with self._lock:
            return {"keys": [self._keys[kid].public_jwk() for kid in self._published]}

    def rotate_key(self) -> str:
        """Make a new signing key current, add it to the JWKS (old keys stay); return its kid."""
        key = _SigningKey.generate(self.algorithm)
        with self._lock:
            self._keys[key.kid] = key
            self._published.append(key.kid)
            self.current_kid = key.kid
        self._write_jwks_file()
        return key.kid

    def retire_key(self, kid: str) -> None:
        """Drop a key from the JWKS (tokens can still be signed with it, to test refusal)."""
        with self._lock:
            if kid not in self._keys:
                raise KeyError(kid)
            if kid == self.current_kid:
                raise ValueError("rotate_key() before retiring the current key")
            if kid in self._published:
                self._published.remove(kid)
        self._write_jwks_file()

    def public_key_pem(self, kid: str | None = None) -> bytes:
        """SubjectPublicKeyInfo PEM of a key (default: the current one)."""
        return self._key(kid).public_key_pem()

    def _key(self, kid: str | None) -> _SigningKey:
        with self._lock:
            return self._keys[kid or self.current_kid]

    def _write_jwks_file(self) -> None:
        if not self._tmpdir.exists():
            return
        tmp = self.jwks_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.jwks(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.jwks_path)

    # -- signing -----------------------------------------------------------------------------

    def claims_for(
        self,
        audience: str,
        claims: Mapping[str, Any],
        *,
        lifetime: int = 300,
        omit: tuple[str, ...] = (),
        **overrides: Any,
    ) -> dict[str, Any]:
        """The payload :meth:`token` would sign: standard claims, then ``claims``, then
        ``overrides``, minus ``omit``."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer if self._port is not None else "",
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        payload.update(overrides)
        for name in omit:
            payload.pop(name, None)
        return payload

    def sign(
        self,
        payload: Mapping[str, Any],
        *,
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign an exact payload as a compact JWS with one of this provider's keys.

        The header is ``{"alg", "typ": "JWT", "kid"}`` updated with ``headers``; a header value
        of ``None`` removes that member (e.g. ``{"kid": None}``). The signature is always made
        with the key's real algorithm, even if ``headers`` claims another ``alg``.
        """
        key = self._key(kid)
        header: dict[str, Any] = {"alg": key.algorithm, "typ": "JWT", "kid": key.kid}
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not None}
        signing_input = f"{_b64url_json(header)}.{_b64url_json(payload)}"
        signature = key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{_b64url(signature)}"

    def token(
        self,
        audience: str,
        claims: Mapping[str, Any],
        *,
        lifetime: int = 300,
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
        omit: tuple[str, ...] = (),
        **overrides: Any,
    ) -> str:
        """A signed JWT: ``iss``, ``aud``, ``iat``, ``nbf``, ``exp`` (now + lifetime), ``jti``
        (uuid4), then ``claims``; ``overrides`` set any claim (``exp=…``, ``aud=[…]``, ``iss=…``)
        and ``omit`` drops claims. ``kid`` picks a (possibly retired) key of this provider;
        ``headers`` as in :meth:`sign`. Call after ``start()`` so ``iss`` is known.
        """
        if self._port is None and "iss" not in overrides and "iss" not in claims:
            raise RuntimeError("start() the provider first (iss is its URL), or pass iss=")
        payload = self.claims_for(audience, claims, lifetime=lifetime, omit=omit, **overrides)
        return self.sign(payload, kid=kid, headers=headers)

    # -- hostile tokens (negative tests) -----------------------------------------------------

    def expired_token(self, audience: str, claims: Mapping[str, Any], *, ago: int = 3600) -> str:
        """Validly signed, but ``exp`` was ``ago`` seconds ago (far beyond any leeway)."""
        now = int(time.time())
        start = now - ago - 300
        return self.token(audience, claims, iat=start, nbf=start, exp=now - ago)

    def not_yet_valid_token(
        self, audience: str, claims: Mapping[str, Any], *, ahead: int = 3600
    ) -> str:
        """Validly signed, but ``nbf`` and ``iat`` lie ``ahead`` seconds in the future (> 60 s)."""
        start = int(time.time()) + ahead
        return self.token(audience, claims, iat=start, nbf=start, exp=start + 300)

    def wrong_audience_token(
        self, audience: str, claims: Mapping[str, Any], *, wrong: str | None = None
    ) -> str:
        """Validly signed for another relying party (``aud`` = ``wrong``)."""
        return self.token(wrong or f"not-{audience}", claims)

    def audience_list_token(
        self, audience: str, claims: Mapping[str, Any], *, other: str = "other"
    ) -> str:
        """Validly signed with ``aud = [audience, other]`` (a token one party could replay at
        the other; a strict single-string audience check must refuse it)."""
        return self.token(audience, claims, aud=[audience, other])

    def alg_none_token(self, audience: str, claims: Mapping[str, Any]) -> str:
        """Header ``alg: none`` (kid of the real key), valid claims, empty signature."""
        header = {"alg": "none", "typ": "JWT", "kid": self.current_kid}
        payload = self.claims_for(audience, claims)
        return f"{_b64url_json(header)}.{_b64url_json(payload)}."

    def hs256_with_public_key_token(self, audience: str, claims: Mapping[str, Any]) -> str:
        """Algorithm confusion: ``alg: HS256``, HMAC keyed with the current key's public PEM
        (SubjectPublicKeyInfo, as from :meth:`public_key_pem`), ``kid`` of the real key.
        Built by hand: PyJWT refuses to use a PEM key as an HMAC secret."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.current_kid}
        signing_input = f"{_b64url_json(header)}.{_b64url_json(self.claims_for(audience, claims))}"
        mac = hmac.new(self.public_key_pem(), signing_input.encode("ascii"), hashlib.sha256)
        return f"{signing_input}.{_b64url(mac.digest())}"

    def unknown_kid_token(self, audience: str, claims: Mapping[str, Any]) -> str:
        """Signed by a fresh key (same algorithm) that is in no JWKS, under its own fresh kid."""
        stranger = _SigningKey.generate(self.algorithm)
        header = {"alg": stranger.algorithm, "typ": "JWT", "kid": stranger.kid}
        signing_input = f"{_b64url_json(header)}.{_b64url_json(self.claims_for(audience, claims))}"
        return f"{signing_input}.{_b64url(stranger.sign(signing_input.encode('ascii')))}"

    def tampered_token(
        self,
        audience: str,
        claims: Mapping[str, Any],
        *,
        claim: str = "sub",
        value: Any = "tampered",
    ) -> str:
        """A valid token whose payload claim ``claim`` was set to ``value`` after signing; the
        original header and signature are kept."""
        header_b64, payload_b64, signature_b64 = self.token(audience, claims).split(".")
        payload = json.loads(_b64url_decode(payload_b64))
        payload[claim] = value
        return f"{header_b64}.{_b64url_json(payload)}.{signature_b64}"

    def oversized_token(
        self, audience: str, claims: Mapping[str, Any], *, size: int = MAX_TOKEN_BYTES + 1024
    ) -> str:
        """A validly signed token longer than ``MAX_TOKEN_BYTES`` (64 KiB), via a huge claim
        named ``padding``. Signature and claims verify: refusing it is the index's size limit."""
        filler = "A" * (size * 3 // 4)  # base64url grows 4/3; aim at `size` characters overall
        token = self.token(audience, claims, padding=filler)
        while len(token) <= size:
            filler += "A" * (size - len(token) + 16)
            token = self.token(audience, claims, padding=filler)
        return token

    def foreign_key_token(
        self,
        audience: str,
        claims: Mapping[str, Any],
        other: OIDCProvider | None = None,
    ) -> str:
        """Claims of *this* issuer (``iss`` = this provider) signed with ANOTHER provider's
        current key and kid. Pass ``other`` to use a provider the index also trusts (the
        attack an index with one shared key pool would accept); default: a throw-away one."""
        payload = self.claims_for(audience, claims)
        if other is not None:
            return other.sign(payload)
        throwaway = OIDCProvider(algorithm=self.algorithm)
        try:
            return throwaway.sign(payload)
        finally:
            throwaway.stop()

    # -- HTTP --------------------------------------------------------------------------------

    def _build_app(self) -> ASGIApp:
        app = Starlette(
            routes=[
                Route(f"{self.path}/.well-known/openid-configuration", self._discovery_endpoint),
                Route(f"{self.path}{self.jwks_route}", self._jwks_endpoint),
                Route(f"{self.path}{GITHUB_TOKEN_ROUTE}", self._github_token_endpoint),
            ]
        )

        async def logged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.requests_log.append(scope["path"])
            await app(scope, receive, send)

        return logged

    def discovery_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": [self.algorithm],
            "scopes_supported": ["openid"],
            "claims_supported": list(self.claims_supported),
        }
        doc.update(self.discovery_overrides)
        return doc

    def _outage(self) -> Response | None:
        if self.outage_status is None:
            return None
        return JSONResponse({"message": "service unavailable"}, status_code=self.outage_status)

    async def _discovery_endpoint(self, request: Request) -> Response:
        return self._outage() or JSONResponse(self.discovery_document())

    async def _jwks_endpoint(self, request: Request) -> Response:
        return self._outage() or JSONResponse(
            self.jwks(), headers={"Cache-Control": "public, max-age=3600"}
        )

    async def _github_token_endpoint(self, request: Request) -> Response:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return JSONResponse(
                {"message": "Authorization header with a bearer request token is required"},
                status_code=401,
            )
        if not hmac.compare_digest(credential.strip().encode(), self.request_token.encode()):
            return JSONResponse({"message": "invalid request token"}, status_code=403)
        job = self.github_job
        if job is None:
            return JSONResponse(
                {"message": "this job may not request an OIDC token (id-token: write)"},
                status_code=403,
            )
        audience = request.query_params.get("audience", "")
        self.github_token_audiences.append(audience)
        if not audience:  # GitHub's default audience is the owner's URL
            audience = f"https://github.com/{job.get('repository_owner', '')}"
        now = int(time.time())
        # GitHub dates nbf ten minutes before iat, and exp 5 minutes after it.
        value = self.token(
            audience, job, lifetime=self.github_token_lifetime, iat=now, nbf=now - 600
        )
        return JSONResponse({"value": value})


# --------------------------------------------------------------------------------------------
# Claim sets, shaped like the real providers' tokens (all ids are strings, as they send them)
# --------------------------------------------------------------------------------------------


def _ref_type(ref: str) -> str:
    return "tag" if ref.startswith("refs/tags/") else "branch"


def github_claims(
    repository: str = "acme/widget",
    workflow: str = "release.yml",
    *,
    ref: str = "refs/tags/v1.0.0",
    sha: str = DEFAULT_SHA,
    environment: str | None = None,
    event_name: str = "push",
    repository_owner_id: str = "1234",
    repository_id: str = "5678",
    run_id: str = "42",
    job_workflow_ref: str | None = None,
    host: str = "github.com",
    workflow_name: str | None = None,
    actor: str = "acme-bot",
    actor_id: str = "9012",
    run_number: str = "7",
    run_attempt: str = "1",
    head_ref: str = "",
    base_ref: str = "",
    runner_environment: str = "github-hosted",
    repository_visibility: str = "public",
    check_run_id: str = "4242",
) -> dict[str, Any]:
    """Claims of a GitHub Actions (or GHES) job token, minus iss/aud/iat/nbf/exp/jti.

    ``workflow`` is the workflow *file name* under ``.github/workflows/``; ``workflow_ref`` is
    ``owner/repo/.github/workflows/<file>@<ref>`` and ``job_workflow_ref`` defaults to it (pass
    another to model a reusable workflow). The ``workflow`` claim is the workflow's ``name:``
    (``workflow_name``), or its path when it has none, as GitHub does. ``sub`` follows GitHub's
    default template: ``repo:o/r:environment:<env>`` with an environment, ``repo:o/r:pull_request``
    for pull-request events, else ``repo:o/r:ref:<ref>``.

    GitHub's claims carry no host: a GHES token differs from a github.com one only by its
    ``iss`` (``https://HOST/_services/token``, i.e. ``OIDCProvider(path="/_services/token")``).
    ``host`` is accepted for symmetry with :func:`forgejo_claims` and does not change the claims.
    """
    del host  # documented above: not part of GitHub's claim set
    owner = repository.split("/", 1)[0]
    workflow_path = f".github/workflows/{workflow}"
    workflow_ref = f"{repository}/{workflow_path}@{ref}"
    if environment:
        sub = f"repo:{repository}:environment:{environment}"
    elif event_name in ("pull_request", "pull_request_target"):
        sub = f"repo:{repository}:pull_request"
    else:
        sub = f"repo:{repository}:ref:{ref}"
    claims: dict[str, Any] = {
        "sub": sub,
        "ref": ref,
        "sha": sha,
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": repository_owner_id,
        "run_id": run_id,
        "run_number": run_number,
        "run_attempt": run_attempt,
        "repository_visibility": repository_visibility,
        "repository_id": repository_id,
        "actor_id": actor_id,
        "actor": actor,
        "workflow": workflow_name or workflow_path,
        "head_ref": head_ref,
        "base_ref": base_ref,
        "event_name": event_name,
        "ref_protected": "true" if ref.startswith("refs/tags/") else "false",
        "ref_type": _ref_type(ref),
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": job_workflow_ref or workflow_ref,
        "job_workflow_sha": sha,
        "runner_environment": runner_environment,
        "check_run_id": check_run_id,
    }
    if environment:
        claims["environment"] = environment
    return claims


def gitlab_claims(
    project_path: str = "acme/widget",
    ci_config_path: str = ".gitlab-ci.yml",
    *,
    ref: str = "main",
    ref_type: str = "branch",
    sha: str = DEFAULT_SHA,
    environment: str | None = None,
    instance_host: str = "gitlab.com",
    project_id: str = "77",
    namespace_path: str | None = None,
    namespace_id: str = "66",
    pipeline_id: str = "99",
    job_id: str = "100",
    pipeline_source: str = "push",
    user_login: str = "acme-bot",
    user_id: str = "55",
    user_email: str = "bot@acme.example",
    user_access_level: str = "maintainer",
    runner_environment: str = "gitlab-hosted",
    project_visibility: str = "public",
) -> dict[str, Any]:
    """Claims of a GitLab CI/CD ``id_tokens:`` token, minus iss/aud/iat/nbf/exp/jti.

    ``ref`` is the bare branch or tag name (``ref_type`` ``branch`` | ``tag``); ``ref_path`` is
    ``refs/heads/<ref>`` or ``refs/tags/<ref>``; ``ci_config_ref_uri`` is
    ``<instance_host>/<project_path>//<ci_config_path>@<ref_path>``. For a self-managed instance
    emulated by an ``OIDCProvider``, pass ``instance_host=provider.authority`` (its issuer host).
    ``namespace_path`` defaults to ``project_path`` minus its last segment (subgroups kept).
    """
    ref_path = f"refs/tags/{ref}" if ref_type == "tag" else f"refs/heads/{ref}"
    claims: dict[str, Any] = {
        "sub": f"project_path:{project_path}:ref_type:{ref_type}:ref:{ref}",
        "namespace_id": namespace_id,
        "namespace_path": namespace_path or project_path.rsplit("/", 1)[0],
        "project_id": project_id,
        "project_path": project_path,
        "user_id": user_id,
        "user_login": user_login,
        "user_email": user_email,
        "user_access_level": user_access_level,
        "pipeline_id": pipeline_id,
        "pipeline_source": pipeline_source,
        "job_id": job_id,
        "ref": ref,
        "ref_type": ref_type,
        "ref_path": ref_path,
        "ref_protected": "true",
        "runner_id": 1,
        "runner_environment": runner_environment,
        "sha": sha,
        "project_visibility": project_visibility,
        "ci_config_ref_uri": f"{instance_host}/{project_path}//{ci_config_path}@{ref_path}",
        "ci_config_sha": sha,
    }
    if environment:
        claims.update(
            {
                "environment": environment,
                "environment_protected": "false",
                "deployment_tier": "production",
                "environment_action": "start",
            }
        )
    return claims


def google_claims(
    email: str = "publisher@acme-ci.iam.gserviceaccount.com",
    *,
    sub: str = "1122334455",
    email_verified: bool = True,
) -> dict[str, Any]:
    """Claims of a Google service-account ID token (``includeEmail`` / ``format=full``), minus
    iss/aud/iat/exp. Real Google ID tokens have no ``jti`` and no ``nbf``: sign with
    ``omit=("jti", "nbf")`` to reproduce one exactly."""
    return {"azp": sub, "sub": sub, "email": email, "email_verified": email_verified}


def circleci_claims(
    project_id: str = "5a3c1f52-0f6e-4e5b-9a7a-2f0f3e6b8c11",
    pipeline_definition_id: str = "8d0b7a44-6c2e-4f3a-b1d9-7e5c4a3b2f10",
    *,
    vcs_origin: str = "github.com/acme/widget",
    vcs_ref: str = "refs/heads/main",
    org_id: str = "0b6f8c2e-3d4a-4c5b-8e9f-1a2b3c4d5e6f",
    user_id: str = "c9e1d2f3-a4b5-4c6d-8e7f-90a1b2c3d4e5",
    pipeline_id: str = "f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b",
    context_ids: tuple[str, ...] = ("7c6b5a49-3e2d-4c1b-9a08-f7e6d5c4b3a2",),
    ssh_rerun: bool = False,
    sub_v2: bool = False,
) -> dict[str, Any]:
    """Claims of a CircleCI job OIDC token, minus iss/aud/iat/exp.

    ``sub`` is ``org/<org>/project/<project>/user/<user>`` (``$CIRCLE_OIDC_TOKEN``) or, with
    ``sub_v2``, that plus ``/vcs-origin/<origin>/vcs-ref/<ref>`` (``$CIRCLE_OIDC_TOKEN_V2``).
    CircleCI's issuer is ``https://oidc.circleci.com/org/<org_id>`` (so
    ``OIDCProvider(path=f"/org/{org_id}")``) and its default ``aud`` is the org id.
    """
    sub = f"org/{org_id}/project/{project_id}/user/{user_id}"
    if sub_v2:
        sub = f"{sub}/vcs-origin/{vcs_origin}/vcs-ref/{vcs_ref}"
    return {
        "sub": sub,
        "oidc.circleci.com/org-id": org_id,
        "oidc.circleci.com/project-id": project_id,
        "oidc.circleci.com/pipeline-id": pipeline_id,
        "oidc.circleci.com/pipeline-definition-id": pipeline_definition_id,
        "oidc.circleci.com/context-ids": list(context_ids),
        "oidc.circleci.com/vcs-origin": vcs_origin,
        "oidc.circleci.com/vcs-ref": vcs_ref,
        "oidc.circleci.com/ssh-rerun": ssh_rerun,
    }


def forgejo_claims(
    repository: str = "acme/widget",
    workflow: str = "release.yml",
    *,
    ref: str = "refs/tags/v1.0.0",
    sha: str = DEFAULT_SHA,
    environment: str | None = None,
    host: str = "codeberg.example",
    event_name: str = "push",
    repository_owner_id: str = "1234",
    repository_id: str = "5678",
    actor: str = "acme-bot",
    actor_id: str = "9012",
    run_id: str = "42",
    run_number: str = "7",
    run_attempt: str = "1",
    immutable_sub: bool = False,
) -> dict[str, Any]:
    """Claims of a Forgejo Actions token (``enable-openid-connect: true``), minus the standard ones.

    Forgejo mimics GitHub's claim names; its workflows live under ``.forgejo/workflows/``, and
    its issuer is ``https://<host>/api/actions`` (``OIDCProvider(path="/api/actions")``).
    ``immutable_sub`` gives the ``sub`` form newer repositories get, with ids embedded
    (``repo:<owner>-<owner_id>/<repo>-<repo_id>:ref:<ref>``). Like GitHub, the claims carry no
    host; ``host`` only documents which instance they came from and is not used.
    """
    del host
    owner, _, name = repository.partition("/")
    workflow_ref = f"{repository}/.forgejo/workflows/{workflow}@{ref}"
    subject_repo = (
        f"{owner}-{repository_owner_id}/{name}-{repository_id}" if immutable_sub else repository
    )
    if event_name in ("pull_request", "pull_request_target"):
        sub = f"repo:{subject_repo}:pull_request"
    else:
        sub = f"repo:{subject_repo}:ref:{ref}"
    claims: dict[str, Any] = {
        "sub": sub,
        "actor": actor,
        "actor_id": actor_id,
        "base_ref": "",
        "event_name": event_name,
        "head_ref": "",
        "job_workflow_ref": workflow_ref,
        "ref": ref,
        "ref_protected": "false",
        "ref_type": _ref_type(ref),
        "repository": repository,
        "repository_id": repository_id,
        "repository_owner": owner,
        "repository_owner_id": repository_owner_id,
        "run_attempt": run_attempt,
        "run_id": run_id,
        "run_number": run_number,
        "sha": sha,
        "workflow": workflow,
        "workflow_ref": workflow_ref,
    }
    if environment:
        claims["environment"] = environment
    return claims


# --------------------------------------------------------------------------------------------
# Environments for the real clients
# --------------------------------------------------------------------------------------------

# Everything that makes `id` or uv's ambient-id believe they run in some CI (or on GCP).
_AMBIENT_MARKERS = (
    "GITHUB_ACTIONS",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
)


def clean_ci_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with every ambient-credential trigger removed
    (CI markers, ``*_ID_TOKEN``, GCP impersonation) and 127.0.0.1 added to ``NO_PROXY``: start a
    client subprocess from this plus :func:`github_actions_env` / :func:`gitlab_ci_env`, so the
    test behaves the same when the suite itself runs in CI."""
    env = dict(os.environ if base is None else base)
    for name in list(env):
        if name in _AMBIENT_MARKERS or name.endswith("_ID_TOKEN"):
            del env[name]
    for name in ("NO_PROXY", "no_proxy"):
        existing = [part for part in env.get(name, "").split(",") if part]
        env[name] = ",".join([*existing, "127.0.0.1", "localhost"])
    return env


def github_actions_env(provider: OIDCProvider) -> dict[str, str]:
    """What a GitHub Actions job with ``id-token: write`` exposes (the provider must be running).
    The request URL already carries a query (``?api-version=2.0``), as GitHub's does."""
    return {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": provider.github_token_request_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": provider.request_token,
    }


def gitlab_id_token_var_names(audience: str) -> tuple[str, str]:
    """``(name id reads, name uv reads)`` for the GitLab ``<AUD>_ID_TOKEN`` variable.

    ``id``: ``re.sub(r"[^A-Z0-9_]|^[^A-Z_]", "_", audience.upper())`` (a leading digit → ``_``).
    uv (ambient-id): each character → itself upper-cased if ASCII alphanumeric, else ``_``.
    They differ for audiences starting with a digit (``1pypi`` → ``_PYPI`` vs ``1PYPI``) and for
    non-ASCII ones (``ß`` → ``SS`` vs ``_``; ``é`` → ``_`` in both).
    """
    id_name = re.sub(r"[^A-Z0-9_]|^[^A-Z_]", "_", audience.upper())
    uv_name = "".join(c.upper() if c.isascii() and c.isalnum() else "_" for c in audience)
    return f"{id_name}_ID_TOKEN", f"{uv_name}_ID_TOKEN"


def gitlab_ci_env(audience: str, token: str) -> dict[str, str]:
    """What a GitLab job exposes for ``id_tokens: {<AUD>_ID_TOKEN: {aud: <audience>}}``:
    ``GITLAB_CI=true`` and the token under the name both ``id`` and uv derive (both names when
    they differ)."""
    env = {"GITLAB_CI": "true"}
    for name in gitlab_id_token_var_names(audience):
        env[name] = token
    return env


def buildkite_claims(
    organization: str = "acme",
    pipeline: str = "release",
    *,
    branch: str = "main",
    tag: str | None = None,
    commit: str = "9f3182061f1e2cca4702c368cbc039b7dc9d4485",
    step: str = "publish",
    build_number: int = 42,
) -> dict[str, Any]:
    """Claims of a Buildkite job OIDC token (``buildkite-agent oidc request-token``), minus
    iss/aud/iat/exp; ``sub`` is ``organization:ORG:pipeline:PIPELINE:ref:REF:commit:SHA:step:STEP``
    as PyPI's Buildkite documentation gives it. The real issuer is https://agent.buildkite.com."""
    ref = f"refs/tags/{tag}" if tag else f"refs/heads/{branch}"
    return {
        "sub": f"organization:{organization}:pipeline:{pipeline}:ref:{ref}:commit:{commit}:step:{step}",
        "organization_slug": organization,
        "pipeline_slug": pipeline,
        "build_number": build_number,
        "build_branch": branch,
        **({"build_tag": tag} if tag else {}),
        "build_commit": commit,
        "step_key": step,
        "job_id": "0184990a-477b-4fa8-9968-496074483cee",
        "agent_id": "0184990a-4782-42b5-afc1-16715b10b8ff",
    }
