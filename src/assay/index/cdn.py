"""A CDN in front of the index: cache headers with surrogate keys, and purges on change.

PyPI serves nearly all its reads from Fastly: simple pages and JSON are cached at the edge with
surrogate keys and purged by key when a project changes. Here, likewise:

* simple pages, project JSON and provenance carry ``Cache-Control: public, max-age=<cdn_max_age>,
  s-maxage=<cdn_s_maxage>`` (RFC 9111 section 5.2.2.10: s-maxage is for shared caches only)
  and ``Surrogate-Key`` (Fastly's header; space-separated keys): ``project:<index>/<name>`` on
  everything of one project, ``projects:<index>`` on the project list, ``index:<index>`` on
  everything of an index. With ``cdn_s_maxage`` 0 they stay ``no-cache`` (revalidate each time).
  Files are immutable already (``max-age=31536000, immutable``);
* every committed project change (``assay.storage.changes``, the one hook) purges the project's
  key, and the project list's when the set of projects changed. Purges go from a background
  thread, retried with backoff; an upload never waits for one and never fails because of one
  (a lost purge is bounded by ``cdn_s_maxage``: the edge's copy expires then).

A private index sends ``private, no-cache`` and no keys: no shared cache may store it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import httpx

from assay.config import Settings
from assay.indexes import IndexRef
from assay.storage.changes import ProjectChange

log = logging.getLogger(__name__)

#: The default index's name (keys name the index: ``project:team/demo``).
DEFAULT_INDEX = "default"


def project_keys(name: str, index: str = DEFAULT_INDEX) -> str:
    return f"project:{index}/{name} index:{index}"


def listing_keys(index: str = DEFAULT_INDEX) -> str:
    return f"projects:{index} index:{index}"


def cache_scope(settings: Settings, index: IndexRef) -> str:
    """``private`` for a private index (RFC 9111 section 5.2.2.7: no shared cache may store its
    answers), else ``public``: the scope every response of the index's read path carries."""
    return "private" if index.is_private(settings.private) else "public"


def cache_headers(settings: Settings, keys: str, *, private: bool | None = None) -> dict[str, str]:
    """Cache-Control (and Surrogate-Key) for a response that changes when its project does.
    ``private``: the index's own setting (default: the server's)."""
    if settings.private if private is None else private:
        return {"cache-control": "private, no-cache"}
    if settings.cdn_s_maxage > 0:
        control = f"public, max-age={settings.cdn_max_age}, s-maxage={settings.cdn_s_maxage}"
    elif settings.cdn_max_age > 0:
        control = f"public, max-age={settings.cdn_max_age}"
    else:
        control = "public, no-cache"
    return {"cache-control": control, "surrogate-key": keys}


def purge_keys(change: ProjectChange, index: str = DEFAULT_INDEX) -> list[str]:
    keys = [f"project:{index}/{change.normalized_name}"]
    if change.listing_changed:
        keys.append(f"projects:{index}")
    return keys


Sender = Callable[[list[str]], httpx.Response]


class Purger:
    """Sends purges from one background thread: ``submit`` only queues (never blocks, never
    raises). Keys waiting together go in one request. A failed purge (an error, a non-2xx
    answer) is retried with exponential backoff up to ``attempts`` times, then logged."""

    def __init__(
        self,
        url: str,
        style: str,
        token: str = "",
        *,
        attempts: int = 8,
        backoff: float = 0.25,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
        index_name: Callable[[int], str] | None = None,
    ) -> None:
        self.url = url
        #: The name of an index by id (purge keys name the index); None: only the default's.
        self.index_name = index_name or (lambda index_id: DEFAULT_INDEX if index_id == 1 else str(index_id))
        self.style = style
        self.token = token
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._queue: queue.Queue[list[str] | None] = queue.Queue()
        self._client = httpx.Client(timeout=timeout)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def on_change(self, change: ProjectChange) -> None:
        """The project-change listener (called after commit, in the committing thread)."""
        self.submit(purge_keys(change, self.index_name(change.index_id)))

    def submit(self, keys: list[str]) -> None:
        if self._closed.is_set():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="assay-cdn-purge", daemon=True)
                self._thread.start()
        self._queue.put(keys)

    def _request(self, keys: list[str]) -> httpx.Response:
        joined = " ".join(keys)
        if self.style == "webhook":
            headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
            return self._client.post(self.url, json={"surrogate_keys": keys}, headers=headers)
        headers = {"surrogate-key": joined}
        if self.token:
            if self.style == "fastly":
                headers["fastly-key"] = self.token
            else:
                headers["authorization"] = f"Bearer {self.token}"
        # Fastly purges several keys with one POST to .../purge and a Surrogate-Key header.
        return self._client.request("POST" if self.style == "fastly" else "PURGE", self.url, headers=headers)

    def _send(self, keys: list[str]) -> bool:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._request(keys)
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == self.attempts:
                log.error("CDN purge of %s failed %d times (%s); cached copies expire by s-maxage", keys, attempt,
                          problem)
                return False
            log.warning("CDN purge of %s failed (%s); retrying in %.2f s", keys, problem, delay)
            if self._closed.wait(delay):
                return False
            delay = min(delay * 2, self.max_backoff)
        return False  # pragma: no cover

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = list(first)
            # Coalesce what queued meanwhile: one purge for a burst of uploads.
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._send(sorted(set(batch)))
                    return
                batch += more
            self._send(sorted(set(batch)))

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for up to ``timeout`` seconds), then stop."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            deadline = time.monotonic() + timeout
            thread.join(max(0.0, deadline - time.monotonic()))
        self._closed.set()
        self._client.close()


def purger_for(settings: Settings, index_name: Callable[[int], str] | None = None) -> Purger | None:
    if not settings.cdn_purge_url:
        return None
    return Purger(settings.cdn_purge_url, settings.cdn_purge_style, settings.cdn_purge_token, index_name=index_name)
