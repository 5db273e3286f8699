"""HTTP for ``assay verify``: one client per run, bounded in every dimension.

An index is not trusted to behave. Every request has a total deadline (not only httpx's
per-read timeout, which a server trickling one byte at a time never trips), a size cap
checked while the body streams in (so a 10 GB or endless response costs at most the cap),
at most ``MAX_REDIRECTS`` redirects with loop detection and no https-to-http downgrade, and a
bounded number of retries with exponential backoff, only for what a retry can fix: timeouts,
connection errors, 429 and 500/502/503/504.
"""

from __future__ import annotations

import functools
import os
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from assay import __version__
from assay.verify.errors import FetchError
from assay.verify.indexes import redact

MiB = 1 << 20
MAX_REDIRECTS = 5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Longest wait between attempts, whatever Retry-After asks for.
MAX_BACKOFF = 10.0


class _Retryable(Exception):
    """A failure worth another attempt (timeout, connection error, 429/5xx)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Response:
    url: str  # after redirects
    status: int
    headers: httpx.Headers
    body: bytes


def _size(limit: int) -> str:
    return f"{limit / MiB:g} MiB" if limit >= MiB else f"{limit} bytes"


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


@functools.cache
def _tls_context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    """httpx's default TLS context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built once per
    process: loading a CA bundle costs more than a whole small verification run."""
    del cafile, capath  # the cache key; httpx reads the same variables itself
    return httpx.create_ssl_context()


class Http:
    """One ``httpx.Client`` (HTTP/1.1 keep-alive, ``connections`` sockets at most), shared by
    the run's worker threads (httpx clients are thread-safe)."""

    def __init__(
        self,
        *,
        timeout: float = 20.0,
        retries: int = 3,
        connections: int = 8,
        backoff: float = 0.25,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._client = httpx.Client(
            verify=_tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,  # followed by hand: counted, loop-checked, no downgrade
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"User-Agent": f"assay/{__version__} (assay verify)"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        accept: str,
        limit: int,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """GET ``url`` into memory. Returns the final response whatever its status (callers
        decide what 404 or 403 mean); raises ``FetchError`` when no usable response came."""
        chunks: list[bytes] = []

        def start() -> Callable[[bytes], None]:
            chunks.clear()
            return chunks.append

        response = self._request(url, accept=accept, limit=limit, headers=headers, sink=start)
        return Response(response.url, response.status, response.headers, b"".join(chunks))

    def download(self, url: str, sink: Callable[[], Callable[[bytes], None]], *, limit: int) -> Response:
        """GET ``url`` streaming the body into the writer ``sink()`` returns (called again,
        for a fresh writer, before each retry). Non-200 final statuses raise ``FetchError``."""
        response = self._request(url, accept="*/*", limit=limit, headers=None, sink=sink)
        if response.status != 200:
            raise FetchError(f"{redact(response.url)}: HTTP {response.status}")
        return response

    def post(self, url: str, body: bytes, *, content_type: str, limit: int) -> Response:
        """POST ``body`` once (no retries: a POST need not be idempotent), reading at most
        ``limit`` bytes of the answer; raises ``FetchError`` when no answer came."""
        try:
            with self._client.stream(
                "POST", url, content=body, headers={"Content-Type": content_type, "Accept": "text/plain"}
            ) as response:
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > limit:
                        raise FetchError(f"{redact(url)}: the answer exceeds the {_size(limit)} allowed")
                    chunks.append(chunk)
                return Response(str(response.url), response.status_code, response.headers, b"".join(chunks))
        except httpx.HTTPError as exc:
            raise FetchError(f"{redact(url)}: {type(exc).__name__}: {exc}") from None

    # -- internals ------------------------------------------------------------------------

    def _request(
        self,
        url: str,
        *,
        accept: str,
        limit: int,
        headers: Mapping[str, str] | None,
        sink: Callable[[], Callable[[bytes], None]],
    ) -> Response:
        seen = [url]
        current = url
        while True:
            response = self._with_retries(current, accept=accept, limit=limit, headers=headers, sink=sink)
            if response.status not in REDIRECT_STATUSES:
                return response
            location = response.headers.get("location")
            if not location:
                raise FetchError(f"{redact(current)}: HTTP {response.status} without a Location header")
            target = urljoin(current, location)
            if target in seen:
                chain = " -> ".join(redact(u) for u in [*seen, target])
                raise FetchError(f"redirect loop: {chain}")
            if len(seen) > MAX_REDIRECTS:
                raise FetchError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects")
            if urlsplit(current).scheme == "https" and urlsplit(target).scheme != "https":
                raise FetchError(f"{redact(current)} redirects to {redact(target)}, which is not https")
            seen.append(target)
            current = target

    def _with_retries(
        self,
        url: str,
        *,
        accept: str,
        limit: int,
        headers: Mapping[str, str] | None,
        sink: Callable[[], Callable[[bytes], None]],
    ) -> Response:
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                return self._once(url, accept=accept, limit=limit, headers=headers, write=sink())
            except _Retryable as exc:
                if attempt + 1 == attempts:
                    tries = f" (after {attempts} attempts)" if attempts > 1 else ""
                    raise FetchError(f"{redact(url)}: {exc}{tries}") from None
                if exc.retry_after is not None:
                    delay = exc.retry_after  # the server said when (RFC 9110 Retry-After)
                else:
                    # Exponential backoff with jitter, so parallel workers do not retry in step.
                    delay = self.backoff * (2**attempt) * (0.5 + random.random())  # noqa: S311
                time.sleep(min(delay, MAX_BACKOFF))
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(
        self,
        url: str,
        *,
        accept: str,
        limit: int,
        headers: Mapping[str, str] | None,
        write: Callable[[bytes], None],
    ) -> Response:
        deadline = time.monotonic() + self.timeout
        request_headers = {"Accept": accept, **(headers or {})}
        try:
            with self._client.stream("GET", url, headers=request_headers) as response:
                if response.status_code in RETRY_STATUSES:
                    raise _Retryable(
                        f"HTTP {response.status_code}",
                        retry_after=_retry_after(response.headers.get("retry-after")),
                    )
                if response.status_code in REDIRECT_STATUSES or response.status_code == 304:
                    return Response(str(response.url), response.status_code, response.headers, b"")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise FetchError(
                        f"{redact(url)}: the response is {int(declared)} bytes, more than the {_size(limit)} allowed"
                    )
                received = 0
                # iter_bytes decodes Content-Encoding, so the cap also bounds a gzip bomb.
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > limit:
                        raise FetchError(
                            f"{redact(url)}: the response exceeds the {_size(limit)} allowed; stopped reading"
                        )
                    if time.monotonic() > deadline:
                        raise _Retryable(f"no complete response within {self.timeout:g}s")
                    write(chunk)
                return Response(str(response.url), response.status_code, response.headers, b"")
        except httpx.TimeoutException:
            raise _Retryable(f"no response within {self.timeout:g}s (timed out)") from None
        except httpx.UnsupportedProtocol:
            raise FetchError(f"{redact(url)}: not an http(s) URL") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed ({type(exc).__name__}: {exc})") from None
        except httpx.HTTPError as exc:  # malformed URL, undecodable body: a retry cannot help
            raise FetchError(f"{redact(url)}: {type(exc).__name__}: {exc}") from None
