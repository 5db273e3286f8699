"""CPU per web page (issue 15, item 5): a project with RELEASES releases of two files each, every
other release attested with a real-sized provenance object (shared/fixtures/pep740's), and a
5 KB Markdown description.

In one process, on SQLite, through the real ASGI application (Starlette's TestClient, so each
figure includes the in-process HTTP client's own work): for the project page, a release page
and a file page, the CPU (``time.process_time``, every thread) of a cache miss (the page's body
dropped from the cache first: load, provenance states, templates, description) and of a hit
(serial read, cached body, layout); side by side with the simple page of the same project (the
peer: PEP 503 HTML, cached by serial the same way) and the JSON API (which now also computes
the provenance state from every file). Then the render alone, without HTTP: the miss's
``assay.ui.projects._render`` call. A "miss" is cold: nothing of the project is cached (the
caches are cleared as the project-change hook clears them).

Usage: .venv/bin/python -m bench.ui.pages [--releases 200] [--repeat 30]
       PYTHONPATH=/tmp/old/src .venv/bin/python -m bench.ui.pages --api-only   (a tree without assay.ui:
       the simple page and the JSON API only, for the side-by-side with the previous commit)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_version
from starlette.requests import Request
from starlette.testclient import TestClient

from assay.app.asgi import create_app
from assay.app.services import build_services
from assay.config import load_settings
from assay.storage.changes import ProjectChange
from assay.storage.models import DEFAULT_INDEX_ID, File, Project, Release

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "pep740"
FIXTURE = FIXTURES / "pypi_attestations-0.0.19.tar.gz.provenance"
NAME = "bench-ui"
#: What the project-change hook hands the caches: this project (id 1) changed.
CHANGE = ProjectChange(1, DEFAULT_INDEX_ID, NAME, listing_changed=False)


def populate(session: object, releases: int) -> None:
    provenance = json.loads(FIXTURE.read_text())
    description = "# bench-ui\n\n" + "\n\n".join(
        f"## Section {i}\n\nSome *text* with a [link](https://docs.invalid/{i}) and `code`." for i in range(60)
    )
    project = Project(name=NAME, normalized_name=NAME, status="active", serial=1)
    session.add(project)  # type: ignore[attr-defined]
    session.flush()  # type: ignore[attr-defined]
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for r in range(releases):
        version = f"1.{r}.0"
        meta = {"name": NAME, "version": version, "summary": "A benchmark project", "classifiers": [
            "Programming Language :: Python :: 3", "License :: OSI Approved :: Apache Software License"]}
        if r == releases - 1:
            meta |= {"description": description, "description_content_type": "text/markdown"}
        release = Release(project_id=project.id, version=version, canonical_version=canonicalize_version(version),
                          created=start + dt.timedelta(days=r), core_metadata=meta)
        session.add(release)  # type: ignore[attr-defined]
        session.flush()  # type: ignore[attr-defined]
        for kind, filename in (
            ("sdist", f"bench_ui-{version}.tar.gz"),
            ("bdist_wheel", f"bench_ui-{version}-py3-none-any.whl"),
        ):
            digest = hashlib.sha256(filename.encode()).hexdigest()
            session.add(File(  # type: ignore[attr-defined]
                release_id=release.id, project_id=project.id, filename=filename, packagetype=kind,
                python_version="source" if kind == "sdist" else "py3", size=12345, sha256=digest,
                blake2_256=digest, md5=digest[:32], upload_time=start + dt.timedelta(days=r),
                blob_key=f"{digest[:2]}/{digest}/{filename}", metadata_sha256=digest,
                metadata_blob_key=f"{digest[:2]}/{digest}/{filename}.metadata",
                provenance=provenance if r % 2 == 0 else None,
            ))


def cpu_ms(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        samples.append((time.process_time() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--releases", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--api-only", action="store_true", help="only the simple page and the JSON API")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"data_dir": tmp}, environ={})
        svc = build_services(settings)
        svc.db.migrate()
        with svc.db.write() as session:
            populate(session, args.releases)
        latest = f"1.{args.releases - 1}.0"
        rel_file = f"bench_ui-1.{args.releases - 2}.0.tar.gz"  # an attested one
        pages = {
            "project page": f"/project/{NAME}/",
            "release page": f"/project/{NAME}/{latest}/",
            "file page (attested)": f"/project/{NAME}/1.{args.releases - 2}.0/{rel_file}/",
        }
        peers = {"simple page (peer)": f"/simple/{NAME}/", "JSON API": f"/pypi/{NAME}/json"}
        if args.api_only:
            pages = {}
        rows = []
        with TestClient(create_app(settings, svc), base_url="http://127.0.0.1") as client:

            def get(path: str, miss: bool) -> Callable[[], object]:
                def run() -> object:
                    if miss:  # cold: nothing of the project cached
                        if not args.api_only:
                            svc.ui_pages.forget(CHANGE)
                        svc.pages.forget(CHANGE)
                    response = client.get(path)
                    assert response.status_code == 200, (path, response.status_code)
                    return response

                return run

            for label, path in {**pages, **peers}.items():
                get(path, False)()  # warm
                miss = cpu_ms(get(path, True), args.repeat) if label != "JSON API" else None
                hit = cpu_ms(get(path, False), args.repeat)
                rows.append((label, miss, hit, len(client.get(path).content)))
            render_ms = None if args.api_only else render_alone(svc, args.repeat)
        svc.close()
    simple_hit = next(r[2] for r in rows if r[0] == "simple page (peer)")
    print(f"{args.releases} releases x 2 files, half attested; CPU ms per request (median of {args.repeat})")
    print(f"{'page':24} {'miss':>8} {'hit':>8} {'hit/simple':>11} {'bytes':>9}")
    for label, miss, hit, size in rows:
        miss_text = f"{miss:8.2f}" if miss is not None else f"{'-':>8}"
        print(f"{label:24} {miss_text} {hit:8.2f} {hit / simple_hit:11.2f} {size:9d}")
    if render_ms is not None:
        print(f"project page render alone (miss, no HTTP): {render_ms:.2f} ms CPU")


def render_alone(svc: Any, repeat: int) -> float:
    """The render alone: what a miss costs beyond HTTP."""
    from assay.ui.common import Context
    from assay.ui.projects import _render

    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""})
    ctx = Context(svc, request, svc.indexes.default(), None, "x", False)

    def render_only() -> object:
        svc.ui_pages.forget(CHANGE)
        return _render(ctx, NAME, "project", None, None)

    return cpu_ms(render_only, repeat)


if __name__ == "__main__":
    main()
