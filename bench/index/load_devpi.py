"""Populate a devpi-server directory with the generated files, through devpi's own import.

Uploading 100,000 files over devpi's HTTP API takes hours (one keyfs transaction, one file
copy and one event per upload); devpi's export/import format is its documented way to move a
whole index. This script writes an export dump (``dataindex.json`` plus the files, hard-linked,
in devpi's ``<user>/<index>/<project>/<version>/<file>`` layout) in the format ``devpi-export``
6.x writes (dumpversion 2) and for the same content ``devpi upload`` would register: a user
``bench``, a private non-volatile index ``bench/idx`` with no bases, each version's core
metadata as devpi extracts it, each file with its sha256 and an ``upload`` log entry. Then it
runs ``devpi-import`` (which stores every file through ``store_releasefile``, the code path of an
upload, one write transaction per project) into a fresh server directory.

Run it with the devpi venv's python. Usage: python load_devpi.py SERVERDIR DISTS_DIR DUMP_DIR
[--projects N]. Prints one JSON line: {"files": ..., "dump_seconds": ..., "import_seconds": ...}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import VERSIONS, dist_name, project_name

USER = "bench"
INDEX = "idx"
WHEN = [2024, 1, 1, 0, 0, 0]
LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"


def versiondata(i: int, version: str) -> dict[str, object]:
    """What devpi stores for a version when ``devpi upload`` registers it (read from an export
    of a real upload of the same files)."""
    empty_lists = [
        "platform",
        "classifiers",
        "supported_platform",
        "provides",
        "requires",
        "obsoletes",
        "project_urls",
        "provides_dist",
        "obsoletes_dist",
        "requires_dist",
        "requires_external",
        "provides_extras",
        "dynamic",
        "license_file",
    ]
    empty_strings = [
        "home_page",
        "author",
        "author_email",
        "maintainer",
        "maintainer_email",
        "keywords",
        "download_url",
        "comment",
        "description_content_type",
        "license_expression",
    ]
    data: dict[str, object] = {
        "name": project_name(i),
        "version": version,
        "metadata_version": "2.1",
        "summary": f"Benchmark project number {i}",
        "license": "MIT",
        "description": f"A small generated project for the index benchmark ({i}, {version}).\n",
        "requires_python": ">=3.8",
    }
    data.update({k: "" for k in empty_strings})
    data.update({k: [] for k in empty_lists})
    return data


def pwhash(password: str) -> str:
    import argon2  # devpi-server's own dependency

    return argon2.PasswordHasher().hash(password)


def write_dump(dists: Path, dump: Path, projects: int) -> int:
    if dump.exists():
        shutil.rmtree(dump)
    dump.mkdir(parents=True)
    projects_data: dict[str, dict[str, object]] = {}
    files = []
    for i in range(projects):
        name = project_name(i)
        dn = dist_name(i)
        projects_data[name] = {v: versiondata(i, v) for v in VERSIONS}
        for v in VERSIONS:
            vdir = dump / USER / INDEX / name / v
            vdir.mkdir(parents=True)
            for filename in (f"{dn}-{v}-py3-none-any.whl", f"{dn}-{v}.tar.gz"):
                src = dists / filename
                os.link(src, vdir / filename)
                digest = hashlib.sha256(src.read_bytes()).hexdigest()
                files.append(
                    {
                        "version": v,
                        "entrymapping": {
                            "last_modified": LAST_MODIFIED,
                            "hash_spec": f"sha256={digest}",
                            "hashes": {"sha256": digest},
                            "project": name,
                            "version": v,
                        },
                        "log": [{"what": "upload", "who": USER, "when": WHEN, "dst": f"{USER}/{INDEX}"}],
                        "type": "releasefile",
                        "projectname": name,
                        "relpath": f"{USER}/{INDEX}/{name}/{v}/{filename}",
                    }
                )
    data = {
        "users": {
            USER: {"pwhash": pwhash(USER), "created": "2024-01-01T00:00:00Z", "username": USER},
        },
        "indexes": {
            f"{USER}/{INDEX}": {
                "indexconfig": {
                    "bases": [],
                    "acl_toxresult_upload": [":ANONYMOUS:"],
                    "volatile": False,
                    "mirror_whitelist_inheritance": "intersection",
                    "mirror_whitelist": [],
                    "acl_upload": [USER],
                    "type": "stage",
                },
                "projects": projects_data,
                "files": files,
            }
        },
        "dumpversion": "2",
        "pythonversion": list(sys.version_info),
        "devpi_server": _devpi_version(),
    }
    (dump / "dataindex.json").write_text(json.dumps(data))
    return len(files)


def _devpi_version() -> str:
    from importlib.metadata import version

    return version("devpi-server")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("serverdir", type=Path)
    ap.add_argument("dists", type=Path)
    ap.add_argument("dump", type=Path)
    ap.add_argument("--projects", type=int, default=10_000)
    args = ap.parse_args()
    bindir = Path(sys.executable).parent
    t0 = time.monotonic()
    n = write_dump(args.dists, args.dump, args.projects)
    t1 = time.monotonic()
    if args.serverdir.exists():
        shutil.rmtree(args.serverdir)
    subprocess.run(
        [
            str(bindir / "devpi-import"),
            "--serverdir",
            str(args.serverdir),
            "--no-root-pypi",
            "--hard-links",
            str(args.dump),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    t2 = time.monotonic()
    print(json.dumps({"files": n, "dump_seconds": round(t1 - t0, 1), "import_seconds": round(t2 - t1, 1)}))


if __name__ == "__main__":
    main()
