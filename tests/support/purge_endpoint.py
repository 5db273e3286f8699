"""A local stand-in for a CDN's purge API: records every request it gets (method, path,
headers, body); answers 503 to the first ``fail_first`` ones (to prove purges are retried)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Purge:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def keys(self) -> set[str]:
        return set(self.headers.get("surrogate-key", "").split())


class PurgeEndpoint:
    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.received: list[Purge] = []
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with endpoint._lock:
                    status = 503 if len(endpoint.received) < endpoint.fail_first else 200
                    endpoint.received.append(
                        Purge(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            do_PURGE = do_POST = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/purge"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PurgeEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted_keys(self) -> set[str]:
        with self._lock:
            return set().union(*(p.keys for p in self.received if p.status == 200))

    def wait_for(self, keys: set[str], timeout: float = 20) -> set[str]:
        """Wait until every one of ``keys`` has been purged successfully; returns what was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if keys <= self.accepted_keys():
                break
            time.sleep(0.05)
        return self.accepted_keys()

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
