"""Issuers' signing keys (JWKS): from OIDC discovery, or a configured JWKS file or URL.

Keys are cached per issuer in process memory; that is safe to keep per worker because a miss
only costs a refetch. Following Warehouse: a token whose ``kid`` is not in the cached set
triggers a refetch, at most once per ``REFETCH_INTERVAL`` per issuer (so forged kids cannot make
us hammer an issuer), an empty key set is never cached, and when the issuer is unreachable the
cached keys keep working.

Keys come over TLS. Plain http is allowed only to a loopback address (a stand-in issuer in
tests), decided on the parsed URL, never on its spelling: the host must be exactly
``localhost`` or a loopback IP (127.0.0.0/8, ::1), and no URL may carry userinfo, so
``http://127.0.0.1.evil.example/`` and ``http://127.0.0.1@evil.example/`` are refused before
any connection or DNS lookup. The URL that was checked is the one requested (one parser).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

from assay import untrusted_json

log = logging.getLogger(__name__)

REFETCH_INTERVAL = 60.0  # Warehouse's rate limit for refetching an issuer's keys
MAX_JWKS_BYTES = 1024 * 1024


class KeyLookupError(LookupError):
    """No key for this token; the message says why (unknown kid, issuer unreachable...)."""


@dataclass
class _Cached:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched: float = 0.0
    #: Held while this issuer's keys are being fetched, so concurrent requests wait for that fetch.
    fetching: threading.Lock = field(default_factory=threading.Lock)


#: An unknown kid longer than this is not echoed back in refusals (it is attacker input).
MAX_SHOWN_KID = 64


class UnsafeURL(ValueError):
    """A URL keys (or an issuer) may not be fetched from; the message says why."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, or a number form like 2130706433 that only resolvers accept


def check_url(url: str, what: str = "URL") -> httpx.URL:
    """``url`` parsed, if keys may be fetched from it: https, or plain http to loopback; no
    userinfo (``user@`` would let the text before ``@`` pose as the host)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UnsafeURL(f"{what} {url!r} is not a valid URL: {exc}") from None
    if parsed.userinfo:
        raise UnsafeURL(f"{what} {url!r} must not contain a user name or password (user@host)")
    if parsed.scheme == "https" and parsed.host:
        return parsed
    if parsed.scheme == "http" and _is_loopback(parsed.host):
        return parsed
    raise UnsafeURL(f"{what} must be an https:// URL (plain http only to 127.0.0.1, ::1 or localhost), got {url!r}")


def is_url(source: str) -> bool:
    """A JWKS source with a scheme is a URL; anything else is a file path."""
    return "://" in source


def shown(value: object) -> str:
    """A token header value (kid, alg) for a refusal: quoted, unless it is long attacker input."""
    text = str(value)
    return repr(value) if len(text) <= MAX_SHOWN_KID else f"({len(text)} characters, not shown)"


class KeyStore:
    def __init__(self, *, timeout: float = 5.0, refetch_interval: float = REFETCH_INTERVAL) -> None:
        self.refetch_interval = refetch_interval
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def _get_json(self, url: str) -> Any:
        # Keys must come over TLS; plain http only for a stand-in issuer on loopback (tests).
        try:
            checked = check_url(url, "the key URL")
        except UnsafeURL as exc:
            raise KeyLookupError(f"refusing to fetch keys: {exc}") from None
        with self._client.stream("GET", checked, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise KeyLookupError(f"{url} answered HTTP {response.status_code}")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise KeyLookupError(f"{url} returned more than {MAX_JWKS_BYTES} bytes")
        try:
            # An issuer's answer is outside input too: bounded nesting (issue 10, item 3).
            return untrusted_json.loads(body)
        except ValueError as exc:
            raise KeyLookupError(f"{url} did not return usable JSON ({exc})") from None

    def _fetch(self, issuer: str, source: str | None) -> dict[str, jwt.PyJWK]:
        if source and not is_url(source):
            try:
                document = json.loads(Path(source).read_text())
            except (OSError, ValueError) as exc:
                raise KeyLookupError(f"cannot read the JWKS file {source}: {exc}") from None
        else:
            jwks_uri = source
            if not jwks_uri:
                discovery = self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
                # Compared as tokens are: one trailing "/" is not a different issuer.
                named = discovery.get("issuer") if isinstance(discovery, dict) else None
                if not isinstance(named, str) or named.removesuffix("/") != issuer.removesuffix("/"):
                    raise KeyLookupError(f"the discovery document of {issuer} names another issuer")
                jwks_uri = discovery.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise KeyLookupError(f"the discovery document of {issuer} has no jwks_uri")
            document = self._get_json(jwks_uri)
        keys: dict[str, jwt.PyJWK] = {}
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise KeyLookupError(f"the JWKS of {issuer} has no 'keys' list")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue  # a key without kid can never be selected (we require kid)
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
                log.warning("ignoring unusable key %s of %s: %s", entry.get("kid"), issuer, exc)
        return keys

    def key(self, issuer: str, source: str | None, kid: str) -> jwt.PyJWK:
        with self._lock:
            cached = self._cache.setdefault(issuer, _Cached())
            if kid in cached.keys:
                return cached.keys[kid]
        # One fetch per issuer at a time, and the cache is looked at again once it is ours: a
        # request arriving while another fetches this issuer's keys waits for that fetch and uses
        # its result. (Without this, concurrent first tokens of a new key were refused, all but
        # one, as "recently refreshed": tests/reliability/test_races.py.)
        with cached.fetching:
            with self._lock:
                if kid in cached.keys:
                    return cached.keys[kid]
                now = time.monotonic()
                if cached.fetched and now - cached.fetched < self.refetch_interval:
                    raise KeyLookupError(f"no key with kid {shown(kid)} for issuer {issuer} (recently refreshed)")
                cached.fetched = now
            try:
                fresh = self._fetch(issuer, source)
            except (httpx.HTTPError, KeyLookupError) as exc:
                if isinstance(exc, KeyLookupError):
                    raise
                raise KeyLookupError(f"cannot fetch the keys of {issuer}: {exc}") from None
            with self._lock:
                if fresh:
                    cached.keys = fresh
                if kid not in cached.keys:
                    raise KeyLookupError(f"no key with kid {shown(kid)} for issuer {issuer}")
                return cached.keys[kid]
