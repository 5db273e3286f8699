"""Issue 14, item 4: what the JSON API's per-file ``rebuilds`` lists cost, in process.

A SQLite index with one project of RELEASES releases of WHEELS wheels (and an sdist) each,
half the wheels with two rebuild reports; ``/pypi/<p>/json`` (every file) and
``/pypi/<p>/<v>/json`` (one release) built by ``index.jsonapi`` in a read session, CPU per
call, with the reports query and without it (``rebuild_reports.of_project`` answering ``{}``:
the JSON API as it was before rebuilds), alternating in one run.

Usage: python bench/rebuilds/json_api.py [--releases 50] [--wheels 8] [--n 300] [--no-reports]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assay.index import jsonapi, rebuild_reports
from assay.index.pages import project_head
from assay.indexes import Indexes
from assay.storage.db import Database
from assay.storage.models import File, Project, RebuildAttestation, Rebuilder, Release


def _hex(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def populate(db: Database, releases: int, wheels: int, reports: bool) -> None:
    with db.write() as session:
        project = Project(name="bench-rb", normalized_name="bench-rb")
        session.add(project)
        session.flush()
        builders = [
            Rebuilder(
                project_id=project.id, issuer="https://i.example", identity=f"r{i}@x.example", identity_kind="email"
            )
            for i in range(2)
        ]
        session.add_all(builders)
        session.flush()
        for r in range(releases):
            version = f"1.{r}"
            release = Release(project_id=project.id, version=version, canonical_version=version, core_metadata={})
            session.add(release)
            session.flush()
            names = [(f"bench_rb-{version}.tar.gz", "sdist")]
            names += [(f"bench_rb-{version}-cp3{w}-none-any.whl", "bdist_wheel") for w in range(wheels)]
            for n, (filename, kind) in enumerate(names):
                sha = _hex(filename)
                session.add(
                    File(
                        release_id=release.id,
                        project_id=project.id,
                        filename=filename,
                        packagetype=kind,
                        python_version="source" if kind == "sdist" else "py3",
                        size=1000,
                        sha256=sha,
                        blake2_256=sha,
                        md5=sha[:32],
                        blob_key=f"k/{filename}",
                    )
                )
                if reports and kind == "bdist_wheel" and n % 2:
                    for b in builders:
                        session.add(
                            RebuildAttestation(
                                project_id=project.id,
                                canonical_version=version,
                                filename=filename,
                                sha256=sha,
                                rebuilt_sha256=sha,
                                outcome="match",
                                rebuilder_id=b.id,
                                attestation={},
                            )
                        )


def cpu_per_call(call: Callable[[], Any], n: int) -> float:
    for _ in range(20):
        call()
    started = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - started) / n * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=50)
    parser.add_argument("--wheels", type=int, default=8)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--no-reports", action="store_true", help="No rebuild reports at all (the common case).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        populate(db, args.releases, args.wheels, not args.no_reports)
        index = Indexes(db).default()
        real = rebuild_reports.of_project

        def project() -> Any:
            with db.read() as session:
                head = project_head(session, index, "bench-rb")
                assert head is not None
                return jsonapi.project_json(session, index, head, "http://h")

        def release() -> Any:
            with db.read() as session:
                head = project_head(session, index, "bench-rb")
                assert head is not None
                return jsonapi.release_json(session, index, head, "1.1", "http://h")

        files = args.releases * (args.wheels + 1)
        reports = "no reports" if args.no_reports else "2 reports on every other wheel"
        print(
            f"{args.releases} releases x ({args.wheels} wheels + 1 sdist) = {files} files, {reports}; CPU ms per call"
        )
        for label, call in (("/pypi/<p>/json", project), ("/pypi/<p>/<v>/json", release)):
            with_reports, without = [], []
            for _ in range(3):  # alternate, so drift hits both alike
                rebuild_reports.of_project = real  # type: ignore[assignment]
                with_reports.append(cpu_per_call(call, args.n))
                rebuild_reports.of_project = lambda *a, **k: {}  # type: ignore[assignment]
                without.append(cpu_per_call(call, args.n))
            rebuild_reports.of_project = real  # type: ignore[assignment]
            w, o = min(with_reports), min(without)
            print(f"{label:22} without reports {o:7.3f}  with reports {w:7.3f}  ratio {w / o:5.2f}")


if __name__ == "__main__":
    main()
