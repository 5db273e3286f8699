"""Issue 17: what a user feels, and what an upload costs: two assay trees, nginx and devpi.

**Install.** ``uv pip install --no-cache`` of a 20-package dependency chain (``chain-pkg-00``
requires ``chain-pkg-01``, ..., ``chain-pkg-19``; each a small wheel, uploaded with twine)
from assay A, assay B (and B under granian with ``--granian``), nginx serving the very same
bytes (B's simple pages written to disk, the blob directory aliased under ``/files/``; the
pages' links are relative, so they lead to nginx's copies, ``.metadata`` files included) and,
with ``--devpi``, devpi-server (the same wheels uploaded with twine to ``bench/idx``). uv
resolves the chain one level at a time (each project's page, then its ``.metadata``), so the
wall time is mostly round trips. Per server: one warm-up install, then ``--installs`` timed
ones; the wall time of each (median) and the server's CPU per install. Servers alternate
order per round; server pinned to CPU 0, uv to CPU 1.

**Uploads.** ``--upload-files`` files of the bench set (``gen.py``) uploaded with twine to a
fresh data directory of tree A and of tree B, alternately per round: the server's CPU per file.

Usage:
  git archive BASE src | tar -x -C /tmp/base
  python bench/index/ab_install.py --work /tmp/rp-install --dists DISTS --a /tmp/base/src --b src
  (add --devpi DEVPI_VENV, a venv with devpi-server installed; --granian)
Prints a line per measurement, then one JSON object with the medians.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import bench
from ab_files import NGINX_CONF

CHAIN = 20
EPOCH = (2026, 1, 1, 0, 0, 0)
TOOLS = Path(sys.executable).parent


def fetch(req: urllib.request.Request | str) -> bytes:
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - loopback http URLs only
        return bytes(resp.read())


def json_request(url: str, method: str, doc: object, headers: dict[str, str] | None = None) -> urllib.request.Request:
    """A request of devpi's JSON API."""
    sent = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    return urllib.request.Request(url, data=json.dumps(doc).encode(), method=method, headers=sent)  # noqa: S310


def chain_name(i: int) -> str:
    return f"chain-pkg-{i:02d}"


def chain_wheel(i: int) -> tuple[str, bytes]:
    """A small valid wheel of ``chain-pkg-<i>`` 1.0 that requires the next one."""
    dn = chain_name(i).replace("-", "_")
    info = f"{dn}-1.0.dist-info"
    requires = f"Requires-Dist: {chain_name(i + 1)}\n" if i + 1 < CHAIN else ""
    meta = f"Metadata-Version: 2.1\nName: {chain_name(i)}\nVersion: 1.0\n{requires}\n".encode()
    members = [
        (f"{dn}/__init__.py", b'VERSION = "1.0"\n'),
        (f"{info}/METADATA", meta),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: assay-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]

    def line(path: str, data: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(data)}"

    record = "\n".join([*(line(p, d) for p, d in members), f"{info}/RECORD,,"]) + "\n"
    members.append((f"{info}/RECORD", record.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in members:
            zi = zipfile.ZipInfo(path, EPOCH)
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data, zipfile.ZIP_DEFLATED)
    return f"{dn}-1.0-py3-none-any.whl", buf.getvalue()


def write_chain(work: Path) -> list[Path]:
    out = work / "chain-dists"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(CHAIN):
        name, data = chain_wheel(i)
        (out / name).write_bytes(data)
        files.append(out / name)
    return files


def assay_cmd(tree: str, *args: str) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, "-m", "assay", *args], {"PYTHONPATH": tree}


def token_for(tree: str, data: Path) -> str:
    """A fresh data directory at ``data`` with user ``bench``, and an API token of it."""
    for args in (["init"], ["user", "create", "bench"]):
        cmd, env = assay_cmd(tree, "admin", "--data-dir", str(data), *args)
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **env})
    cmd, env = assay_cmd(tree, "admin", "--data-dir", str(data), "token", "create", "--user", "bench")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **env}).stdout
    return next(w for w in out.split() if w.startswith("assay-"))


def twine(url: str, user: str, password: str, files: list[Path]) -> None:
    cmd = [str(TOOLS / "twine"), "upload", "--disable-progress-bar", "--non-interactive"]
    subprocess.run(
        [*cmd, "--repository-url", url, "-u", user, "-p", password, *map(str, files)], check=True, capture_output=True
    )


@contextlib.contextmanager
def assay(tree: str, data: Path, work: Path, name: str, extra: Sequence[str] = ()) -> Iterator[tuple[int, int]]:
    port = bench.free_port()
    cmd, env = assay_cmd(tree, "serve", "--data-dir", str(data), "--port", str(port), *extra)
    server = bench.Server(name, "", cmd, "/simple/", ["html"], env=env)
    # bench.running waits for /simple/bench-pkg-00000/: any answer but a refused connection will do.
    with running_any(server, port, work / f"{name.replace(' ', '-')}.log") as proc:
        yield port, proc.pid


@contextlib.contextmanager
def running_any(server: bench.Server, port: int, logfile: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``bench.running``, but ready once ``/simple/`` answers at all (the chain has no bench-pkg)."""
    with logfile.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", server.cpus, *server.cmd],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **server.env}, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{server.name} exited at start; see {logfile}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{server.prefix}", timeout=30):
                        break
                except urllib.error.HTTPError:
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} did not answer; see {logfile}")
                time.sleep(0.3)
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def uv_install(index_url: str, target: Path) -> float:
    shutil.rmtree(target, ignore_errors=True)
    uv = str(TOOLS / "uv")
    cmd = ["taskset", "-c", "1", uv, "pip", "install", "--no-cache", "--quiet", "--index-url", index_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env["UV_NO_CONFIG"] = "1"
    started = time.monotonic()
    subprocess.run(
        [*cmd, "--python", sys.executable, "--target", str(target), chain_name(0)], check=True, env=env,
        capture_output=True,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert len(list(target.glob("chain_pkg_*/__init__.py"))) == CHAIN
    return seconds


def measure_installs(name: str, url: str, pid: int, work: Path, n: int) -> dict[str, float]:
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    target = work / "target"
    uv_install(url, target)  # warm-up: caches filled, pages rendered
    bench.settle(pid, 10)
    walls = []
    pids = bench.tree_pids(pid)
    before = bench.cpu_ticks(pids)
    for _ in range(n):
        walls.append(uv_install(url, target))
    cpu = (bench.cpu_ticks(pids) - before) * tick_ms / n
    row = {"wall_s": round(statistics.median(walls), 4), "server_cpu_ms_per_install": round(cpu, 1)}
    print("install", name, json.dumps(row), flush=True)
    return row


def devpi_setup(venv: Path, work: Path, files: list[Path]) -> Path:
    """A devpi server directory with user ``bench`` and index ``bench/idx`` holding the chain."""
    serverdir = work / "devpi-server"
    if (serverdir / "uploaded").exists():
        return serverdir
    shutil.rmtree(serverdir, ignore_errors=True)
    subprocess.run([str(venv / "bin" / "devpi-init"), "--serverdir", str(serverdir)], check=True, capture_output=True)
    port = bench.free_port()
    server = bench.Server("devpi", "", devpi_cmd(venv, serverdir, port), "/", ["html"])
    with running_any(server, port, work / "devpi-setup.log"):
        base = f"http://127.0.0.1:{port}"
        fetch(json_request(f"{base}/bench", "PUT", {"password": "bench"}))
        doc = json.loads(fetch(json_request(f"{base}/+login", "POST", {"user": "bench", "password": "bench"})))
        auth = base64.b64encode(f"bench:{doc['result']['password']}".encode()).decode()
        fetch(json_request(f"{base}/bench/idx", "PUT", {"bases": [], "volatile": False}, {"X-Devpi-Auth": auth}))
        twine(f"{base}/bench/idx/", "bench", "bench", files)
    (serverdir / "uploaded").write_text("ok\n")
    return serverdir


def devpi_cmd(venv: Path, serverdir: Path, port: int) -> list[str]:
    return [
        str(venv / "bin" / "devpi-server"),
        "--serverdir",
        str(serverdir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def upload_cpu(tree: str, work: Path, name: str, files: list[Path]) -> float:
    """Server CPU ms per file for twine uploading ``files`` to a fresh data directory."""
    data = work / f"upload-{name.replace(' ', '-')}"
    shutil.rmtree(data, ignore_errors=True)
    token = token_for(tree, data)
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    with assay(tree, data, work, f"upload {name}") as (port, pid):
        bench.settle(pid, 10)
        pids = bench.tree_pids(pid)
        before = bench.cpu_ticks(pids)
        twine(f"http://127.0.0.1:{port}/legacy/", "__token__", token, files)
        cpu = (bench.cpu_ticks(bench.tree_pids(pid)) - before) * tick_ms / len(files)
    print("upload", name, round(cpu, 2), flush=True)
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--dists", type=Path, required=True, help="gen.py's output (the upload check's files)")
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--installs", type=int, default=5)
    ap.add_argument("--upload-files", type=int, default=100)
    ap.add_argument("--devpi", type=Path, help="a venv with devpi-server")
    ap.add_argument("--granian", action="store_true")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    trees = {"assay A": str(args.a.resolve()), "assay B": str(args.b.resolve())}
    chain = write_chain(work)

    # One index per tree, and nginx on tree B's bytes.
    datas = {}
    for name, tree in trees.items():
        data = work / f"install-{name.replace(' ', '-')}"
        if not (data / "uploaded").exists():
            shutil.rmtree(data, ignore_errors=True)
            token = token_for(tree, data)
            with assay(tree, data, work, f"setup {name}") as (port, _):
                twine(f"http://127.0.0.1:{port}/legacy/", "__token__", token, chain)
            (data / "uploaded").write_text("ok\n")
        datas[name] = data
    pages = work / "pages"
    with assay(trees["assay B"], datas["assay B"], work, "pages") as (port, _):
        for i in range(CHAIN):
            body = fetch(f"http://127.0.0.1:{port}/simple/{chain_name(i)}/")
            (pages / "simple" / chain_name(i)).mkdir(parents=True, exist_ok=True)
            (pages / "simple" / chain_name(i) / "index.html").write_bytes(body)
    devpi_dir = devpi_setup(args.devpi, work, chain) if args.devpi else None

    names = ["assay A", "assay B", *(["assay B granian"] if args.granian else []), "nginx"]
    if devpi_dir:
        names.append("devpi")
    installs: dict[str, list[dict[str, float]]] = {}
    uploads: dict[str, list[float]] = {"assay A": [], "assay B": []}
    some = (
        sorted(args.dists.glob("*.whl"))[: args.upload_files // 2]
        + sorted(args.dists.glob("*.tar.gz"))[: args.upload_files // 2]
    )
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            if name == "nginx":
                tmp = work / "nginx"
                tmp.mkdir(exist_ok=True)
                port = bench.free_port()
                user = "user root;\n" if os.geteuid() == 0 else ""
                conf = tmp / "nginx.conf"
                conf.write_text(
                    NGINX_CONF.format(user=user, tmp=tmp, port=port, files=datas["assay B"] / "files", pages=pages)
                )
                server = bench.Server(name, "", ["nginx", "-c", str(conf), "-p", str(tmp)], "/simple/", ["html"])
                with running_any(server, port, work / "nginx.log") as proc:
                    row = measure_installs(name, f"http://127.0.0.1:{port}/simple/", proc.pid, work, args.installs)
            elif name == "devpi":
                assert devpi_dir is not None
                assert args.devpi is not None
                port = bench.free_port()
                server = bench.Server(name, "", devpi_cmd(args.devpi, devpi_dir, port), "/", ["html"])
                with running_any(server, port, work / "devpi.log") as proc:
                    url = f"http://127.0.0.1:{port}/bench/idx/+simple/"
                    row = measure_installs(name, url, proc.pid, work, args.installs)
            else:
                tree = trees["assay A" if name == "assay A" else "assay B"]
                extra = ["--server", "granian"] if name.endswith("granian") else []
                with assay(tree, datas["assay A" if name == "assay A" else "assay B"], work, name, extra) as (
                    port,
                    pid,
                ):
                    row = measure_installs(name, f"http://127.0.0.1:{port}/simple/", pid, work, args.installs)
            installs.setdefault(name, []).append(row)
        for name in ["assay A", "assay B"] if r % 2 == 0 else ["assay B", "assay A"]:
            uploads[name].append(upload_cpu(trees[name], work, name, some))

    summary: dict[str, object] = {
        "install": {
            name: {
                "wall_s": statistics.median(x["wall_s"] for x in rows),
                "server_cpu_ms_per_install": statistics.median(x["server_cpu_ms_per_install"] for x in rows),
            }
            for name, rows in installs.items()
        },
        "upload_cpu_ms_per_file": {name: round(statistics.median(v), 2) for name, v in uploads.items()},
    }
    walls = {n: v["wall_s"] for n, v in summary["install"].items()}  # type: ignore[attr-defined]
    summary["wall_over_nginx"] = {n: round(w / walls["nginx"], 2) for n, w in walls.items()}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
