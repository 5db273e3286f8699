"""Issuers' signing keys (JWKS): from OIDC discovery, or a configured JWKS file or URL.

Keys are cached per issuer in process memory; that is safe to keep per worker because a miss
only costs a refetch. Following Warehouse: a token whose ``kid`` is not in the cached set
triggers a refetch, at most once per ``REFETCH_INTERVAL`` per issuer (so forged kids cannot make
us hammer an issuer), an empty key set is never cached, and when the issuer is unreachable the
cached keys keep working.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

from assay.web import untrusted_json

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


def _is_local(url: str) -> bool:
    return url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))


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
        if not url.startswith("https://") and not _is_local(url):
            raise KeyLookupError(f"refusing to fetch keys over plain http from {url}")
        with self._client.stream("GET", url, headers={"Accept": "application/json"}) as response:
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
        if source and not source.startswith(("https://", "http://")):
            try:
                document = json.loads(Path(source).read_text())
            except (OSError, ValueError) as exc:
                raise KeyLookupError(f"cannot read the JWKS file {source}: {exc}") from None
        else:
            jwks_uri = source
            if not jwks_uri:
                discovery = self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
                if not isinstance(discovery, dict) or discovery.get("issuer") != issuer:
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
                    raise KeyLookupError(f"no key with kid {kid!r} for issuer {issuer} (recently refreshed)")
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
                    raise KeyLookupError(f"no key with kid {kid!r} for issuer {issuer}")
                return cached.keys[kid]
