"""Issue 17, item 3: what each layer of the request path costs, in process, without a socket.

The ASGI app of a populated data directory is called directly with a synthetic scope (no
uvicorn, no network), peeling one layer at a time: the fast lane in front of it all
(``index.fastpath.ReadFastPath``, which answers cache hits itself), the whole stack (``SecurityHeaders`` →
``KeepConnection`` → Starlette's error middleware → allowed hosts → ``BodyLimits`` → the
exception middleware → the router), then without the two outer layers, the router alone, and
the matched route's endpoint alone. The differences are each layer's CPU per request.

Usage: python bench/index/layers.py DATA_DIR PATH [PATH ...] [--n 20000]
  (e.g. /simple/bench-pkg-00001/ and a /files/... key; PYTHONPATH picks the tree)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from starlette.routing import Match

from assay.app.asgi import create_app
from assay.config import load_settings


def scope_for(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"text/html"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def measure(app: Any, path: str, n: int, statuses: list[int], starlette: Any) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    # Starlette.__call__ puts the app in the scope before its middleware stack runs.
    for _ in range(200):  # warm: caches filled, statements compiled
        await app({**scope_for(path), "app": starlette}, receive, send)
    started = time.process_time()
    for _ in range(n):
        await app({**scope_for(path), "app": starlette}, receive, send)
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    app = create_app(load_settings({"data_dir": str(args.data)}))

    async def run() -> dict[str, dict[str, float]]:
        lane = app.build_middleware_stack()  # the fast lane (index.fastpath), in front of it all
        full = lane.app  # type: ignore[attr-defined]  # SecurityHeaders → KeepConnection → Starlette's
        inner = full.app.app  # below SecurityHeaders and KeepConnection
        out: dict[str, dict[str, float]] = {}
        for path in args.paths:
            statuses: list[int] = []
            scope = {**scope_for(path), "app": app}
            endpoint: Any = None
            for route in app.router.routes:
                match, _ = route.matches(scope)
                if match is Match.FULL:
                    endpoint = route
                    break
            assert endpoint is not None

            async def route_only(s: dict[str, Any], r: Any, w: Any, endpoint: Any = endpoint) -> None:
                s["app"] = app
                _, child = endpoint.matches(s)
                s.update(child)
                await endpoint.handle(s, r, w)

            async def router(s: dict[str, Any], r: Any, w: Any) -> None:
                s["app"] = app
                await app.router(s, r, w)

            row = {
                "fast lane (a cache hit)": await measure(lane, path, args.n, statuses, app),
                "full stack": await measure(full, path, args.n, statuses, app),
                "below security headers": await measure(inner, path, args.n, statuses, app),
                "router": await measure(router, path, args.n, statuses, app),
                "route (match + endpoint)": await measure(route_only, path, args.n, statuses, app),
            }
            assert set(statuses) == {200}, set(statuses)
            out[path] = {k: round(v, 1) for k, v in row.items()}
        return out

    print(json.dumps(asyncio.run(run()), indent=1))


if __name__ == "__main__":
    main()
