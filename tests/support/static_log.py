"""A static C2SP tlog-tiles log on 127.0.0.1, for log-client tests: what a CDN or a plain
static host would serve (issue 13), built in memory with assay's own log code from the entries
a test chooses, signed with the key the test gives (an index's own key, to fake a fork).

``StaticLog(signer).serve()`` starts ``http.server`` in a daemon thread; ``publish(entries)``
replaces the whole log (so a test can serve a rolled-back or forked tree), ``url`` is the log
prefix (``.../log/``). It answers ``checkpoint``, ``key``, ``tile/...`` and
``tile/entries/...``, and records the bodies POSTed to ``cosignature`` (answering 200).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from assay.log import checkpoint, entries, merkle, note, tiles


class StaticLog:
    def __init__(self, signer: note.Ed25519Signer) -> None:
        self.signer = signer
        self.files: dict[str, bytes] = {}
        self.posted: list[bytes] = []
        self.size = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/log/"

    def publish(self, data: Sequence[bytes], *, extra_signature: bytes = b"") -> bytes:
        """Serve exactly these entries; returns the signed checkpoint."""
        store = merkle.MemoryHashStore()
        for entry in data:
            store.append(entry)
        size = len(data)
        files: dict[str, bytes] = {}
        for tile in tiles.tiles_for_size(size):
            files[tile.path()] = tiles.tile_data(tile, store)
            if tile.level == 0:
                first = tile.n * tiles.TILE_WIDTH
                files[tile.entries_path()] = tiles.encode_bundle(data[first : first + tile.width])
        root = merkle.tree_hash(size, store)
        signed = checkpoint.sign(checkpoint.Checkpoint(self.origin, size, root), [self.signer]) + extra_signature
        files["checkpoint"] = signed
        files["key"] = (self.signer.verifier_key() + "\n").encode()
        self.files, self.size = files, size
        return signed

    def publish_entries(self, objects: Sequence[dict[str, Any]]) -> bytes:
        return self.publish([entries.encode(e) for e in objects])

    def serve(self) -> StaticLog:
        log = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = log.files.get(self.path.removeprefix("/log/")) if self.path.startswith("/log/") else None
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                log.posted.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
