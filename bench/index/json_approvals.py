"""Issue 14, item 5: what the JSON API's approvals add per request, in process.

``/pypi/<project>/json`` and ``/pypi/<project>/<version>/json`` now read the project's signed
approval statements (one indexed query, ``index.jsonapi.Approvals.load``) to give each file its
``approval``. This times that query alone against the whole JSON document it is part of
(``jsonapi.project_json``), on a populated data directory (bench/index/gen.py,
load_assay.py), CPU time per call, alternating the two for ``--rounds``.

Usage: python bench/index/json_approvals.py DATA_DIR [--project bench-pkg-00001] [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from assay.config import load_settings
from assay.index import jsonapi
from assay.index.pages import project_head
from assay.indexes.registry import load_all
from assay.storage.db import Database


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--project", default="bench-pkg-00001")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    settings = load_settings({"data_dir": str(args.data)})
    db = Database(settings.resolved_database_url)
    index = next(i for i in load_all(db) if i.name == "default")
    results: dict[str, list[float]] = {"approvals_query_us": [], "project_json_us": []}
    with db.read() as session:
        head = project_head(session, index, args.project)
        assert head is not None, args.project
        for _ in range(200):  # warm: statements compiled
            jsonapi.project_json(session, index, head, "http://127.0.0.1")
        for _ in range(args.rounds):
            started = time.process_time()
            for _ in range(args.n):
                jsonapi.Approvals.load(session, head.id)
            results["approvals_query_us"].append((time.process_time() - started) / args.n * 1e6)
            started = time.process_time()
            for _ in range(args.n):
                jsonapi.project_json(session, index, head, "http://127.0.0.1")
            results["project_json_us"].append((time.process_time() - started) / args.n * 1e6)
    query, whole = statistics.median(results["approvals_query_us"]), statistics.median(results["project_json_us"])
    print(json.dumps({**{k: [round(v, 1) for v in vs] for k, vs in results.items()}, "share": round(query / whole, 3)}))


if __name__ == "__main__":
    main()
