"""Check that the bulk-loaded assay index is what real uploads produce.

Uploads the files of a few projects with twine (the real client, over HTTP) to a fresh assay
server, then compares, for each of those projects, what that server and the server on the
bulk-loaded data directory answer: the simple page in HTML and in JSON, the JSON API (project
and each release), and the bytes of a wheel, its ``.metadata`` file and an sdist. Upload times
and the servers' own addresses (in absolute URLs) are the only expected differences and are
masked. Exits non-zero on any other difference.

Run with the assay venv's python. Usage: python verify.py BULK_DATA_DIR DISTS_DIR SCRATCH_DIR
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import VERSIONS, dist_name, project_name

BIN = Path(sys.executable).parent
PROJECTS = (0, 4242, 9999)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(data_dir: Path) -> object:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "assay"), "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/simple/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def mask(text: str, base: str) -> str:
    """Hide what legitimately differs: upload times and the server's own address."""
    return TIME.sub("<time>", text.replace(base, "<base>"))


def fetch(base: str, path: str, accept: str | None = None) -> tuple[int, str, bytes]:
    r = httpx.get(base + path, headers={"accept": accept} if accept else {}, timeout=30)
    return r.status_code, r.headers.get("content-type", ""), r.content


def main() -> None:
    bulk, dists, scratch = (Path(a).resolve() for a in sys.argv[1:4])
    if scratch.exists():
        shutil.rmtree(scratch)
    admin = [str(BIN / "assay"), "admin", "--data-dir", str(scratch)]
    subprocess.run([*admin, "user", "create", "bench"], check=True, capture_output=True)
    out = subprocess.run([*admin, "token", "create", "--user", "bench"], check=True, capture_output=True, text=True)
    token = next(w for w in out.stdout.split() if w.startswith("assay-"))

    files = []
    for i in PROJECTS:
        dn = dist_name(i)
        for v in VERSIONS:
            files += [dists / f"{dn}-{v}-py3-none-any.whl", dists / f"{dn}-{v}.tar.gz"]

    problems = []
    checked = 0
    with serve(scratch) as real:
        subprocess.run(
            [
                str(BIN / "twine"),
                "upload",
                "--disable-progress-bar",
                "--non-interactive",
                "--repository-url",
                f"{real}/legacy/",
                "-u",
                "__token__",
                "-p",
                token,
                *map(str, files),
            ],
            check=True,
            capture_output=True,
        )
        with serve(bulk) as loaded:
            for i in PROJECTS:
                name = project_name(i)
                dn = dist_name(i)
                requests: list[tuple[str, str | None]] = [
                    (f"/simple/{name}/", "text/html"),
                    (f"/simple/{name}/", "application/vnd.pypi.simple.v1+json"),
                    (f"/pypi/{name}/json", None),
                    *((f"/pypi/{name}/{v}/json", None) for v in VERSIONS),
                ]
                page = json.loads(fetch(real, f"/simple/{name}/", "application/vnd.pypi.simple.v1+json")[2])
                for f in page["files"]:
                    if f["filename"] in (f"{dn}-1.0.0-py3-none-any.whl", f"{dn}-2.0.1.tar.gz"):
                        url = f["url"].removeprefix("../..")
                        requests.append((url, None))
                        if f["filename"].endswith(".whl"):
                            requests.append((url + ".metadata", None))
                for path, accept in requests:
                    a = fetch(real, path, accept)
                    b = fetch(loaded, path, accept)
                    checked += 1
                    if (a[0], a[1], mask(a[2].decode("latin-1"), real)) != (
                        b[0],
                        b[1],
                        mask(b[2].decode("latin-1"), loaded),
                    ):
                        problems.append(
                            f"{path} ({accept}): uploads gave {a[0]} {a[2][:300]!r}, "
                            f"bulk load gave {b[0]} {b[2][:300]!r}"
                        )
                    elif a[0] != 200:
                        problems.append(f"{path}: status {a[0]} on both")
    if problems:
        print("verify: the bulk-loaded index differs from real uploads:", *problems, sep="\n  ", file=sys.stderr)
        raise SystemExit(1)
    print(
        f"verify: {checked} responses for {len(PROJECTS)} projects identical to twine uploads (upload times masked)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
